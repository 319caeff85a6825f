"""HTTP in: the LangGraph server API over FastAPI. Calls the service only.

- app.py                      the application: routers, middleware, lifespan, error handler
- runs.py, threads.py,
  assistants.py, crons.py,
  store.py, system.py         the routes, one module per resource
- models.py, cron_models.py,
  store_models.py             wire models (pydantic): what a request may say
- responses.py                JSON responses and SSE framing (bodies: runlane.wire)
- access.py, extract.py       who is asking (owner) and request helpers
- auth/                       authentication and authorization handlers
"""
