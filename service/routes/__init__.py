"""The service's routers, one module per concern: :mod:`.solve` (``POST /solve``), :mod:`.jobs`
(``/jobs``), :mod:`.ops` (``/healthz``, ``/readyz``, ``/metrics``), :mod:`.pages` (``/view``,
``/docs``, ``/redoc``) and :mod:`.openai` (the OpenAI-compatible ``/v1`` facade)."""
