"""A loopback TCP proxy in front of an S3 server for the benchmarks: every
request waits LATENCY_MS before it is forwarded (a distant region), and
requests are counted by kind. Request boundaries are found by turns: the
first bytes a client sends after the server has answered start a request.

  latency_proxy.py UPSTREAM_PORT LATENCY_MS COUNTS_FILE   prints its port,
  then serves until killed; COUNTS_FILE is rewritten after every request
  as "total head list delete put other".
"""
import asyncio, sys

UP_PORT, LATENCY, COUNTS = int(sys.argv[1]), int(sys.argv[2]) / 1000.0, sys.argv[3]
counts = {"total": 0, "head": 0, "list": 0, "delete": 0, "put": 0, "other": 0}


def kind(first: bytes) -> str:
    line = first.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = line.partition(" ")
    target = rest.split(" ")[0]
    if method == "HEAD":
        return "head"
    if method == "GET" and ("?versions" in target or "list-type" in target or "?uploads" in target or target.count("/") == 1):
        return "list"
    if method == "DELETE" or (method == "POST" and "?delete" in target):
        return "delete"
    if method == "PUT":
        return "put"
    return "other"


def save():
    with open(COUNTS, "w") as f:
        f.write(" ".join(str(counts[k]) for k in ("total", "head", "list", "delete", "put", "other")) + "\n")


async def pipe_client(reader, writer, state):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if state["turn"] == "client":
            state["turn"] = "server-pending"
            counts["total"] += 1
            counts[kind(data)] += 1
            save()
            await asyncio.sleep(LATENCY)
        writer.write(data)
        await writer.drain()
    writer.close()


async def pipe_server(reader, writer, state):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        state["turn"] = "client"
        writer.write(data)
        await writer.drain()
    writer.close()


async def handle(creader, cwriter):
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", UP_PORT)
    except OSError:
        cwriter.close()
        return
    state = {"turn": "client"}
    await asyncio.gather(
        pipe_client(creader, swriter, state),
        pipe_server(sreader, cwriter, state),
        return_exceptions=True,
    )


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    save()
    async with server:
        await server.serve_forever()


asyncio.run(main())
