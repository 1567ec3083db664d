"""A local stand-in for the Hugging Face Hub: the part of its HTTP API that downloads use.

It serves repositories built by the tests (``add_repo``) on loopback, so ``huggingface_hub``'s
real download code runs against it through ``HF_ENDPOINT``:

- ``GET /api/models/{repo}[/revision/{rev}]``: model info with the file list and commit sha;
- ``HEAD|GET /{repo}/resolve/{rev}/{file}``: the file, with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length``, honouring ``Range`` (206) so interrupted downloads can resume;
- 401/403/404 answers with the ``X-Error-Code`` headers the Hub sends (``RepoNotFound``,
  ``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``).

and the part that ``create_repo``, ``create_branch`` and ``upload_folder`` use for small files
(every file is committed inline, the Hub's "regular" upload mode; no LFS):

- ``POST /api/repos/create``: a new repo in a namespace the token may write to (409 if it
  exists, 403 elsewhere, 401 without a valid token);
- ``POST /api/validate-yaml``: the model card's metadata (always valid here);
- ``POST /api/models/{repo}/branch/{name}``: a branch from main;
- ``POST /api/models/{repo}/preupload/{rev}``: every file "regular";
- ``POST /api/models/{repo}/commit/{rev}``: the ndjson commit (header, base64 files), applied
  on top of the revision's files as a new commit.

``cut_next[name] = k`` makes the next k GETs of a file send half of what they should and drop
the connection.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def _blob_id(data: bytes) -> str:
    """Git's blob id, which the Hub uses as the ETag of small (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(name: str) -> bool:
    return name.endswith((".safetensors", ".bin"))


@dataclass
class Repo:
    revisions: dict[str, str]  # branch/tag/ref name -> commit sha
    commits: dict[str, dict[str, bytes]]  # commit sha -> file name -> content
    private: bool = False
    gated: bool = False


@dataclass
class HubStandIn:
    repos: dict[str, Repo] = field(default_factory=dict)
    token: str = "hf_good_token"
    namespaces: tuple[str, ...] = ("tester", "quotegen-org")  # where the token may write
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    cut_next: dict[str, int] = field(default_factory=dict)
    commit_messages: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_repo(
        self,
        repo_id: str,
        folder: Path,
        *,
        revisions: dict[str, str] | None = None,
        private: bool = False,
        gated: bool = False,
        extra_files: dict[str, bytes] | None = None,
    ) -> str:
        """Publish every file of ``folder`` as one commit; returns its sha."""
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        files.update(extra_files or {})
        sha = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
        repo = self.repos.setdefault(repo_id, Repo(revisions={}, commits={}))
        repo.commits[sha] = files
        repo.private, repo.gated = private, gated
        for name in revisions or {"main": sha}:
            repo.revisions[name] = sha
        return sha

    def start(self) -> HubStandIn:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

            def do_POST(self) -> None:
                hub._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- request handling -----------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler, *, head: bool) -> None:
        raw_path = urlsplit(req.path).path
        self.requests.append((req.command, raw_path, req.headers.get("Range")))
        parts = raw_path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(unquote(p) for p in parts[2:4])
            if len(parts) > 5 and parts[4] == "tree":
                self._tree(req, repo_id, unquote(parts[5]))
                return
            revision = unquote(parts[5]) if len(parts) > 5 and parts[4] == "revision" else "main"
            self._model_info(req, repo_id, revision)
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id = "/".join(unquote(p) for p in parts[:2])
            revision = unquote(parts[3])
            filename = unquote("/".join(parts[4:]))
            self._resolve(req, repo_id, revision, filename, head=head)
            return
        self._error(req, 404, "", "Not found")

    def _post(self, req: BaseHTTPRequestHandler) -> None:
        raw_path = urlsplit(req.path).path
        self.requests.append((req.command, raw_path, None))
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        parts = [unquote(p) for p in raw_path.strip("/").split("/")]
        if parts == ["api", "validate-yaml"]:
            self._json(req, {"errors": [], "warnings": []})
            return
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            self._error(req, 401, "", "Invalid credentials in Authorization header")
            return
        if parts == ["api", "repos", "create"]:
            self._create_repo(req, json.loads(body))
            return
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo_id, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
            repo = self.repos.get(repo_id)
            if repo is None:
                self._error(req, 404, "RepoNotFound", "Repository not found")
                return
            if repo_id.split("/")[0] not in self.namespaces:
                self._error(req, 403, "", "You don't have the rights to write to this repo")
                return
            if action == "branch":
                self._create_branch(req, repo, revision)
                return
            sha = self._commit(req, repo, revision)
            if sha is None:
                return
            if action == "preupload":
                files = json.loads(body)["files"]
                self._json(
                    req,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ]
                    },
                )
                return
            if action == "commit":
                self._apply_commit(req, repo_id, repo, revision, sha, body)
                return
        self._error(req, 404, "", "Not found")

    def _create_repo(self, req: BaseHTTPRequestHandler, payload: dict[str, object]) -> None:
        namespace = str(payload.get("organization") or "tester")
        repo_id = f"{namespace}/{payload['name']}"
        if namespace not in self.namespaces:
            self._error(req, 403, "", f"You don't have the rights to create a repo in {namespace}")
            return
        if repo_id in self.repos:  # the Hub names the existing repo's URL too
            url = f"{self.url}/{repo_id}"
            self._error(req, 409, "", "You already created this model repo", {"url": url})
            return
        sha = hashlib.sha1(repo_id.encode()).hexdigest()
        private = payload.get("visibility") == "private" or payload.get("private") is True
        self.repos[repo_id] = Repo(revisions={"main": sha}, commits={sha: {}}, private=private)
        self._json(req, {"url": f"{self.url}/{repo_id}", "name": repo_id})

    def _create_branch(self, req: BaseHTTPRequestHandler, repo: Repo, branch: str) -> None:
        if branch in repo.revisions:
            self._error(req, 409, "", "Reference already exists")
            return
        repo.revisions[branch] = repo.revisions["main"]
        self._json(req, {})

    def _apply_commit(
        self,
        req: BaseHTTPRequestHandler,
        repo_id: str,
        repo: Repo,
        revision: str,
        parent: str,
        body: bytes,
    ) -> None:
        files = dict(repo.commits[parent])
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                self.commit_messages.append(item["value"]["summary"])
            elif item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                files.pop(item["value"]["path"], None)
            else:
                self._error(req, 400, "", f"The stand-in does not take {item['key']} entries")
                return
        sha = hashlib.sha1(parent.encode() + repr(sorted(files.items())).encode()).hexdigest()
        repo.commits[sha] = files
        repo.revisions[revision] = sha
        self._json(
            req,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                "hookOutput": "",
            },
        )

    def _authorise(self, req: BaseHTTPRequestHandler, repo_id: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        authorised = req.headers.get("Authorization") == f"Bearer {self.token}"
        if repo is None or (repo.private and not authorised):
            self._error(req, 401, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and not authorised:
            self._error(req, 403, "GatedRepo", "Access to this model is restricted")
            return None
        return repo

    def _commit(self, req: BaseHTTPRequestHandler, repo: Repo, revision: str) -> str | None:
        sha = repo.revisions.get(revision, revision if revision in repo.commits else None)
        if sha is None:
            self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    def _lookup(
        self, req: BaseHTTPRequestHandler, repo_id: str, revision: str
    ) -> tuple[Repo, str] | None:
        """The repo and commit a request asks for, or None once an error has been answered."""
        repo = self._authorise(req, repo_id)
        if repo is None:
            return None
        sha = self._commit(req, repo, revision)
        return None if sha is None else (repo, sha)

    def _model_info(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        found = self._lookup(req, repo_id, revision)
        if found is None:
            return
        repo, sha = found
        self._json(
            req,
            {
                "_id": sha[:24],
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": repo.private,
                "gated": "auto" if repo.gated else False,
                "disabled": False,
                "tags": ["transformers", "gpt2", "text-generation"],
                "pipeline_tag": "text-generation",
                "siblings": [{"rfilename": name} for name in sorted(repo.commits[sha])],
            },
        )

    def _tree(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        found = self._lookup(req, repo_id, revision)
        if found is None:
            return
        repo, sha = found
        entries = []
        for name, data in sorted(repo.commits[sha].items()):
            entry: dict[str, object] = {
                "type": "file",
                "oid": _blob_id(data),
                "size": len(data),
                "path": name,
            }
            if _is_lfs(name):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            entries.append(entry)
        self._json(req, entries)

    @staticmethod
    def _json(req: BaseHTTPRequestHandler, payload: object) -> None:
        body = json.dumps(payload).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _resolve(
        self, req: BaseHTTPRequestHandler, repo_id: str, revision: str, filename: str, *, head: bool
    ) -> None:
        found = self._lookup(req, repo_id, revision)
        if found is None:
            return
        repo, sha = found
        data = repo.commits[sha].get(filename)
        if data is None:
            self._error(req, 404, "EntryNotFound", f"{filename} does not exist")
            return
        start = 0
        range_header = req.headers.get("Range")
        if range_header and range_header.startswith("bytes=") and not head:
            start = int(range_header[6:].split("-")[0] or 0)
        body = data[start:]
        req.send_response(206 if start else 200)
        req.send_header("X-Repo-Commit", sha)
        if _is_lfs(filename):
            digest = hashlib.sha256(data).hexdigest()
            req.send_header("ETag", f'"{digest}"')
            req.send_header("X-Linked-Etag", f'"{digest}"')
            req.send_header("X-Linked-Size", str(len(data)))
        else:
            req.send_header("ETag", f'"{_blob_id(data)}"')
        req.send_header("Content-Length", str(len(body)))
        req.send_header("Accept-Ranges", "bytes")
        if start:
            req.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        req.end_headers()
        if head:
            return
        if self.cut_next.get(filename, 0) > 0:
            self.cut_next[filename] -= 1
            req.wfile.write(body[: len(body) // 2])
            req.wfile.flush()
            req.close_connection = True
            req.connection.close()
            return
        req.wfile.write(body)

    @staticmethod
    def _error(
        req: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps({"error": message, **(extra or {})}).encode()
        req.send_response(status)
        if code:
            req.send_header("X-Error-Code", code)
        req.send_header("X-Error-Message", message)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)
