"""A fake WhatsApp gateway for tests: answers Evolution API's sendText and the Cloud API's
messages endpoint like the samples in test/fixtures (evolution-send-text.json,
whatsapp-cloud-send-text.json), records every request it gets, and can be told to fail
(an HTTP status N times, or every send until told otherwise) or to be slow. It also answers
the health checks: Evolution's GET /instance/connectionState/{instance} (state settable)
and the Cloud API's GET /{version}/{phone_number_id}. Failures and delays apply to sends
(POST) only, so health checks never use them up. Media (add_media): Evolution's POST
/chat/getBase64FromMediaMessage/{instance} answers {"base64","mimetype"} for the message id in
message.key.id; the Cloud API's GET /{version}/{media_id} answers {"url","mime_type","file_size"}
and GET /files/{media_id} the bytes, both only with the channel's bearer token; fail_media(n)
makes the next n media requests fail (their own counter, not the sends'). Sending files:
Evolution's POST /message/sendMedia/{instance} answers like sendText; the Cloud API's POST
/{version}/{phone_number_id}/media (multipart, recorded raw in "raw") answers {"id"}, and both
count as sends (fail_next and the delays apply)."""
import base64
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen backlog: the benchmark opens hundreds of connections at once


class FakeGateway:
    def __init__(self, port=0, latency=0.0):
        self.latency = latency      # seconds every answer waits (the benchmark's gateway)
        self.lock = threading.Lock()
        self.requests = []          # dicts: method, path, headers, body (parsed JSON or None), at
        self._fail = []             # statuses still to answer, in order
        self._delay = []            # seconds to wait before answering, per coming request
        self._ids = itertools.count(1)
        self._fail_all = None       # status every send gets, until cleared
        self._delay_all = 0         # seconds every send waits, until cleared
        self.state = "open"         # Evolution connectionState
        self.health_status = 200    # HTTP status of the health endpoints
        self.media = {}             # id -> (bytes, mime)
        self._media_fail = []       # statuses the next media requests get
        self.bearer = "cloud-test-token"  # what the Cloud API's media endpoints want
        gw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                got = gw._media_get(self.path, dict(self.headers))
                if got is not None:
                    status, answer = got
                    if isinstance(answer, bytes):
                        return self._raw(status, answer)
                    return self._answer(status, answer)
                status, answer = gw._health(self.path, dict(self.headers))
                self._answer(status, answer)

            def _raw(self, status, data):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if self.path.startswith("/chat/getBase64FromMediaMessage/"):
                    return self._answer(*gw._media_evolution(self.path, dict(self.headers), body))
                status, answer, delay = gw._record(self.command, self.path, dict(self.headers), body,
                                                   raw if body is None else None)
                if delay:
                    time.sleep(delay)
                self._answer(status, answer)

            def _answer(self, status, answer):
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client is gone (e.g. a killed worker)

        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # --- control ---------------------------------------------------------
    def fail_next(self, n, status=500):
        """The next n requests are answered with status (and an error body)."""
        with self.lock:
            self._fail.extend([status] * n)

    def delay_next(self, seconds, n=1):
        """The next n requests are answered only after seconds (recorded at once)."""
        with self.lock:
            self._delay.extend([seconds] * n)

    def fail_all(self, status=500):
        """Every send from now on is answered with status; None: answered normally again."""
        with self.lock:
            self._fail_all = status

    def delay_all(self, seconds):
        """Every send from now on waits seconds before its answer; 0: answered at once again."""
        with self.lock:
            self._delay_all = seconds

    def set_state(self, state="open", status=200):
        """What the health endpoints answer: Evolution's connection state and the HTTP status."""
        with self.lock:
            self.state, self.health_status = state, status

    def health_checks(self):
        """Recorded health check requests (GET)."""
        with self.lock:
            return [r for r in self.requests if r["method"] == "GET"]

    def sent(self, text=None, path_prefix=None):
        """Recorded requests, optionally only those carrying text (Evolution or Cloud shape)."""
        with self.lock:
            reqs = list(self.requests)
        out = []
        for r in reqs:
            if r["method"] != "POST":
                continue
            b = r["body"] if isinstance(r["body"], dict) else {}
            t = b.get("text")
            if isinstance(t, dict):
                t = t.get("body")
            if (text is None or t == text) and (path_prefix is None or r["path"].startswith(path_prefix)):
                out.append(r)
        return out

    def add_media(self, media_id, data, mime):
        """Bytes the media endpoints answer for media_id (Evolution: the message id)."""
        with self.lock:
            self.media[media_id] = (data, mime)

    def fail_media(self, n, status=500):
        """The next n media requests are answered with status."""
        with self.lock:
            self._media_fail.extend([status] * n)

    def media_requests(self, media_id=None):
        """Recorded media requests (Evolution's and both Cloud API steps), optionally of one id."""
        with self.lock:
            reqs = [r for r in self.requests if r.get("media")]
        return [r for r in reqs if media_id is None or r["media"] == media_id]

    def _media_record(self, method, path, headers, body, media_id):
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body,
                                  "at": time.time(), "n": next(self._ids), "media": media_id})
            return self._media_fail.pop(0) if self._media_fail else None

    def _media_evolution(self, path, headers, body):
        key = ((body or {}).get("message") or {}).get("key") or {}
        mid = key.get("id")
        fail = self._media_record("POST", path, headers, body, mid)
        if fail:
            return fail, {"status": fail, "error": "fake media failure"}
        with self.lock:
            got = self.media.get(mid)
        if not got:
            return 400, {"status": 400, "error": "Bad Request", "response": {"message": ["Message not found"]}}
        return 201, {"mediaType": "audioMessage", "fileName": None, "size": {"fileLength": str(len(got[0]))},
                     "mimetype": got[1], "base64": base64.b64encode(got[0]).decode()}

    def _media_get(self, path, headers):
        """The Cloud API's media endpoints; None when path is not one of them."""
        parts = path.strip("/").split("/")
        with self.lock:
            known = set(self.media)
        if len(parts) == 2 and parts[0] == "files":
            mid = parts[1]
        elif len(parts) == 2 and parts[0].startswith("v") and parts[1] in known:
            mid = parts[1]
        else:
            return None
        fail = self._media_record("GET", path, headers, None, mid)
        if fail:
            return fail, {"error": {"message": "fake media failure", "code": fail}}
        if headers.get("Authorization") != f"Bearer {self.bearer}":
            return 401, {"error": {"message": "Invalid OAuth access token", "code": 190}}
        with self.lock:
            data, mime = self.media.get(mid, (None, None))
        if data is None:
            return 404, {"error": {"message": "no such media"}}
        if parts[0] == "files":
            return 200, data
        return 200, {"messaging_product": "whatsapp", "url": f"{self.url}/files/{mid}", "mime_type": mime,
                     "sha256": "", "file_size": len(data), "id": mid}

    # --- answers ---------------------------------------------------------
    def _record(self, method, path, headers, body, raw=None):
        with self.lock:
            n = next(self._ids)
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body,
                                  "at": time.time(), "n": n, "raw": raw})
            fail = self._fail.pop(0) if self._fail else self._fail_all
            delay = self._delay.pop(0) if self._delay else (self._delay_all or self.latency)
        if fail:
            return fail, {"status": fail, "error": "Internal Server Error", "response": {"message": ["fake failure"]}}, delay
        b = body if isinstance(body, dict) else {}
        if path.startswith("/message/sendMedia/"):
            number = str(b.get("number", ""))
            return 201, {"key": {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": True, "id": f"3EB0FAKE{self.port:05d}{n:07d}"},
                         "message": {b.get("mediatype", "document") + "Message": {"mimetype": b.get("mimetype")}},
                         "messageTimestamp": str(int(time.time())), "status": "PENDING"}, delay
        if path.endswith("/media") and raw is not None:
            return 200, {"id": f"FAKEUPLOAD{self.port:05d}{n:07d}"}, delay
        if path.startswith("/message/sendText/"):
            number = str(b.get("number", ""))
            return 201, {"key": {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": True, "id": f"3EB0FAKE{self.port:05d}{n:07d}"},
                         "message": {"conversation": b.get("text")}, "messageTimestamp": str(int(time.time())),
                         "status": "PENDING"}, delay
        if path.endswith("/messages"):
            to = str(b.get("to", ""))
            return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                         "messages": [{"id": f"wamid.FAKE{self.port:05d}{n:08d}"}]}, delay
        return 404, {"error": f"no route {path}"}, delay

    def _health(self, path, headers):
        if path == "/stats":  # for test/bench_outbound.py, which runs gateways in processes of their own
            with self.lock:
                posts = [r for r in self.requests if r["method"] == "POST"]
            texts = [r["body"].get("text") for r in posts if isinstance(r["body"], dict)]
            return 200, {"posts": len(posts), "texts": len(set(texts)), "duplicates": len(texts) - len(set(texts))}
        with self.lock:
            self.requests.append({"method": "GET", "path": path, "headers": headers, "body": None,
                                  "at": time.time(), "n": next(self._ids)})
            state, status = self.state, self.health_status
        if path.startswith("/instance/connectionState/"):
            name = path.rsplit("/", 1)[1]
            return status, {"instance": {"instanceName": name, "state": state}}
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0].startswith("v"):
            return status, {"verified_name": "Fake", "display_phone_number": "+55 11 0000-0000", "id": parts[1]}
        return 404, {"error": f"no route {path}"}


if __name__ == "__main__":
    # python3 fakegateway.py PORT [FAIL_STATUS|0] [DELAY_S]: one gateway in a process of its own
    import sys
    g = FakeGateway(int(sys.argv[1]))
    if len(sys.argv) > 2 and int(sys.argv[2]):
        g.fail_all(int(sys.argv[2]))
    if len(sys.argv) > 3:
        g.delay_all(float(sys.argv[3]))
    g.server.serve_forever()
