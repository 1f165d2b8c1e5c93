"""The baseline: a hello-world Starlette app under the same uvicorn settings as kyufu.

It echoes X-Request-ID like kyufu does, because loadtests/submit.lua (run against both) times each
request by it; /healthz answers the script's drain requests."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse(
        {"hello": "world"}, status_code=201, headers={"x-request-id": request.headers.get("x-request-id", "-")}
    )


async def healthz(request):
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/api/v1/applications", hello, methods=["POST"]), Route("/healthz", healthz), Route("/", hello)]
)
