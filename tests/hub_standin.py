"""A local HTTP stand-in of the Hugging Face Hub API endpoints a push uses, for tests without a network.

It answers as the Hub does (huggingface_hub's _commit_api and hf_api read these shapes): whoami-v2, repos/create
(409 when the repository exists), validate-yaml (refusing a base_model that is not a repository id, as the Hub
does), preupload (every file "regular": its bytes travel in the commit) and commit (NDJSON: a header, then one line
per file). What it received is kept in `repos`, `commits` and `requests` for the test to check.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "hf_" + "standin" * 5  # hf_ + 35 letters: a token's shape, not a real one
REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.commits: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                    return True
                self._reply(401, {"error": "Invalid credentials in Authorization header"},
                            {"X-Error-Message": "Invalid credentials in Authorization header"})
                return False

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub.requests.append(f"HEAD {self.path}")
                self._reply(200, {})

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(f"GET {self.path}")
                if self.path.startswith("/api/whoami-v2"):
                    if self._authorised():
                        self._reply(200, {"type": "user", "name": "tester", "orgs": [],
                                          "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
                    return
                tree = re.match(r"^/api/models/(.+)/tree/([^/?]+)", self.path)
                if tree and tree.group(1) in hub.files:
                    self._reply(200, [{"type": "file", "path": path, "size": len(data), "oid": f"{i:040x}"}
                                      for i, (path, data) in enumerate(sorted(hub.files[tree.group(1)].items()))])
                    return
                self._reply(404, {"error": "not in the stand-in"})

            def do_POST(self) -> None:  # noqa: N802
                hub.requests.append(f"POST {self.path}")
                body = self._body()
                if self.path == "/api/validate-yaml":
                    return self._validate(json.loads(body))
                if not self._authorised():
                    return None
                if self.path == "/api/repos/create":
                    return self._create(json.loads(body))
                branch = re.match(r"^/api/models/(.+)/branch/([^/?]+)", self.path)
                if branch:
                    hub.repos[branch.group(1)].setdefault("branches", []).append(branch.group(2))
                    return self._reply(200, {})
                match = re.match(r"^/api/models/(.+)/(preupload|commit)/([^/?]+)", self.path)
                if match and match.group(1) not in hub.repos:
                    return self._reply(404, {"error": "Repository not found"},
                                       {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
                if match and match.group(2) == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                if match:
                    return self._commit(match.group(1), body)
                return self._reply(404, {"error": "not in the stand-in"})

            def _validate(self, payload: dict[str, Any]) -> None:
                import yaml

                content = payload.get("content") or ""
                front = content.split("---")[1] if content.startswith("---") else ""
                meta = yaml.safe_load(front) or {}
                base = meta.get("base_model")
                for name in [base] if isinstance(base, str) else base or []:
                    if not REPO_ID.match(name) or name.startswith(("/", ".")):
                        return self._reply(400, {"error": f'"base_model" with value "{name}" is not valid'},
                                           {"X-Error-Message": f'"base_model" with value "{name}" is not valid'})
                return self._reply(200, {"errors": [], "warnings": []})

            def _create(self, payload: dict[str, Any]) -> None:
                repo_id = "/".join(filter(None, (payload.get("organization") or "tester", payload["name"])))
                if repo_id in hub.repos:
                    return self._reply(409, {"error": "You already created this model repo",
                                             "url": f"{hub.endpoint}/{repo_id}"},
                                       {"X-Error-Message": "You already created this model repo"})
                # huggingface_hub 1.x sends "visibility" (private/public), older versions "private" (a bool)
                visibility = payload.get("visibility")
                private = payload.get("private") if visibility is None else visibility == "private"
                hub.repos[repo_id] = {"private": private}
                hub.files[repo_id] = {}
                return self._reply(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})

            def _commit(self, repo_id: str, body: bytes) -> None:
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                header = next(line["value"] for line in lines if line["key"] == "header")
                files = {line["value"]["path"]: base64.b64decode(line["value"]["content"])
                         for line in lines if line["key"] == "file"}
                deleted = [line["value"]["path"] for line in lines if line["key"] == "deletedFile"]
                if any(path not in hub.files[repo_id] for path in deleted):
                    return self._reply(404, {"error": "deleting a file that does not exist"})
                hub.files[repo_id].update(files)
                for path in deleted:
                    del hub.files[repo_id][path]
                hub.commits.append({"repo": repo_id, "summary": header.get("summary"), "files": sorted(files),
                                    "deleted": deleted,
                                    "revision": self.path.rsplit("/", 1)[-1]})
                oid = f"{len(hub.commits):040x}"
                return self._reply(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid,
                                         "pullRequestUrl": None})

        return Handler
