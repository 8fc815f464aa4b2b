"""recai-serve: recai's LLM backends over the OpenAI API, on Starlette and uvicorn.

``recai serve`` (registered through :mod:`recai_serve.plugin`) serves one backend from the
command line. From Python, :class:`recai_serve.server.LLMServer` runs the server in-process (a
context manager, port 0 by default) and :func:`recai_serve.app.create_app` returns the ASGI app
for any ASGI server. This module imports nothing, so listing plugins stays fast::

    from recai_serve.server import LLMServer

    with LLMServer(backend, model="brain") as server:
        print(server.base_url)  # http://127.0.0.1:PORT/v1
"""

__version__ = "0.1.0"
