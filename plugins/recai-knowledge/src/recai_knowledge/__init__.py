"""recai-knowledge: DOKE's knowledge prompters for recai.

A general LLM recommends better when its prompt carries the right domain knowledge (DOKE, arXiv
2311.10779). Each knowledge type here is a :class:`recai.KnowledgePrompter` fitted on the
training split only: item attributes (``knowledge-attributes.v1``), global co-occurrence
(``knowledge-cooccurrence.v1``), history-based item-to-item neighbours (``knowledge-i2i.v1``), a
recommender's user-to-item preference among the candidates (``knowledge-u2i.v1``), reasoning
paths over a knowledge graph (``knowledge-kgpaths.v1``) and recency notes
(``knowledge-recency.v1``); ``knowledge-composite.v1`` combines them per request within a token
budget, the facts most useful for this user and these candidates first.
"""

__version__ = "0.1.0"
