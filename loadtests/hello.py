"""The baseline: a hello-world Starlette app under the same uvicorn settings as kyufu."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": "world"}, status_code=201)


app = Starlette(routes=[Route("/api/v1/applications", hello, methods=["POST"]), Route("/", hello)])
