"""``visionzoo serve``: the zoo's models over HTTP (FastAPI on uvicorn) with a web page; docs/serve.md."""
