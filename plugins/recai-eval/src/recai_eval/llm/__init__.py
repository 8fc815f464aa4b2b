"""LLM task suites (RecLM-eval's tasks) as recai evaluators.

Each evaluator builds prompts from a dataset's catalog and users' histories, drives one or more
:class:`recai.LLMBackend` components, maps the generated titles back to catalog items and reports
accuracy beside error rates (titles that exist nowhere, duplicates, items from the history, items
outside the candidates, copies of the input order). The modules:

- :mod:`.cache`: model answers on disk (JSONL, appended line by line), so reruns cost no calls;
- :mod:`.runner`: sends requests in chunks with bounded concurrency, through the cache, and
  records every failure;
- :mod:`.parsing`: lists, lettered choices and judge verdicts out of free text;
- :mod:`.scoring`: grounding of mentions, error flags and ranking metrics;
- :mod:`.prompts`: the default prompt templates and how items are written into them;
- :mod:`.params`: the tasks' params models, one inheriting from another (the plugin's entry
  point names them in the component specs);
- :mod:`.base`: what every task shares (sampling users, the session, the report, building a
  task from its params);
- the tasks: :mod:`.retrieval`, :mod:`.ranking`, :mod:`.choice`, :mod:`.explanation`,
  :mod:`.conversation`, :mod:`.embedding`.

The package imports nothing on purpose: the entry point names factories and params models as lazy
``"module:attribute"`` strings, so listing plugins imports none of these modules.
"""
