"""recai-agent: InteRecAgent for recai — an LLM plans, recommenders are its tools.

The agent (``interecagent.v1``) reads a request, writes a plan of tool calls (one LLM call,
decoded under a JSON schema built from the tools and the catalog), runs the tools over one
candidate bus (catalog look-up and hard filters in SQL, soft filters by similarity, ranking by
popularity, similarity or a sequential ranker's preference), and writes a reply that names only
items that came off the bus, with their evidence and the turn's trace.
"""

__version__ = "0.1.0"
