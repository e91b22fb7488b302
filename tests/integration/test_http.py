"""The example app over real HTTP: uvicorn on loopback, httpx as the client."""

from __future__ import annotations

import socket

import httpx

from tests.integration.servers import Server


def raw_request(server: Server, request: bytes) -> bytes:
    """Send bytes exactly as given (for paths httpx would normalise) and read the reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_json_get_and_headers(example_server: Server) -> None:
    response = httpx.get(f"{example_server.base_url}/books/1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.json() == {"title": "Dune", "author": "Frank Herbert", "year": 1965}


def test_route_group_query_and_post(example_server: Server) -> None:
    with httpx.Client(base_url=example_server.base_url) as client:
        created = client.post("/books", json={"title": "Emma", "author": "Jane Austen"})
        assert created.status_code == 201
        location = created.headers["location"]
        assert location.startswith("/books/")
        assert client.get(location).json()["title"] == "Emma"
        listed = client.get("/books", params={"author": "Jane Austen"}).json()["books"]
        assert [book["title"] for book in listed] == ["Emma"]


def test_errors_are_problem_details(example_server: Server) -> None:
    with httpx.Client(base_url=example_server.base_url) as client:
        missing = client.get("/books/999")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                                  "detail": "No book with id 999."}
        assert client.get("/books/abc").status_code == 404  # unconvertible: no route
        not_allowed = client.delete("/books/1")
        assert not_allowed.status_code == 405
        assert not_allowed.headers["allow"] == "GET, HEAD, PUT, OPTIONS"  # PUT: the librarian only
        bug = client.get("/boom")
        assert bug.status_code == 500
        assert bug.json() == {"type": "about:blank", "title": "Internal Server Error",
                              "status": 500}
        assert "RuntimeError" not in bug.text
    assert "this is a bug" in example_server.output  # the traceback went to the log


def test_head_and_options(example_server: Server) -> None:
    with httpx.Client(base_url=example_server.base_url) as client:
        get = client.get("/books/1")
        head = client.head("/books/1")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
        options = client.options("/books")
        assert options.status_code == 204
        assert options.headers["allow"] == "GET, HEAD, POST, OPTIONS"


def test_trailing_slash_redirects_relatively(example_server: Server) -> None:
    response = httpx.get(f"{example_server.base_url}/books/1/?x=1")
    assert response.status_code == 308
    assert response.headers["location"] == "/books/1?x=1"


def test_bad_input_is_4xx_not_500(example_server: Server) -> None:
    with httpx.Client(base_url=example_server.base_url) as client:
        bad_json = client.post("/books", content=b"{not json",
                               headers={"content-type": "application/json"})
        assert bad_json.status_code == 400
        too_big = client.post("/books", content=b"x" * (2 * 1024 * 1024))
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert client.get("/books?author=%ff").status_code == 400
    # invalid UTF-8 in the path, sent raw
    reply = raw_request(example_server, b"GET /books/%ff HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    # invalid percent-encoding is a literal segment: simply not found
    reply = raw_request(example_server, b"GET /books/%zz HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404 ")
    # a header value that is not UTF-8 is read as latin-1: no error
    reply = raw_request(example_server, b"GET /books/1 HTTP/1.1\r\nHost: x\r\nX-Odd: \xff\xfe\r\n"
                        b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")


def test_streaming_arrives_in_chunks(example_server: Server) -> None:
    with httpx.stream("GET", f"{example_server.base_url}/stream") as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        lines = list(response.iter_lines())
    assert lines == [f"tick {i}" for i in range(5)]


def test_protected_write_route_checks_the_token_before_the_body(example_server: Server) -> None:
    with httpx.Client(base_url=example_server.base_url) as client:
        anonymous = client.put("/books/1", content=b"{not json",
                               headers={"content-type": "application/json"})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        wrong = client.put("/books/1", json={"title": ""},
                           headers={"authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        librarian = {"authorization": "Bearer librarian-token"}
        invalid = client.put("/books/1", json={"title": ""}, headers=librarian)
        assert invalid.status_code == 422
        assert [e["name"] for e in invalid.json()["errors"]] == ["$.title", "$.author"]
        replaced = client.put("/books/1", json={"title": "Dune Messiah",
                                                "author": "Frank Herbert"}, headers=librarian)
        assert replaced.status_code == 200
        assert client.get("/books/1").json()["title"] == "Dune Messiah"
        document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["paths"]["/books/{book_id}"]["put"]["security"] == [{"bearerAuth": []}]
