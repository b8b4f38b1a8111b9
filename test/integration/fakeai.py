#!/usr/bin/python3
"""fakeai: a fake OpenAI-compatible chat-completions server for the integration tests and
the benchmark. Its behaviour is switched at runtime, so one running atende can be driven
through success, latency, 429, 500, garbage and hangs:

  POST <any prefix>/chat/completions   the API (e.g. /v1/chat/completions)
  POST <any prefix>/audio/transcriptions  multipart (file, model, language): answers
                  {"text": the transcript set with "transcript"}, after "transcription_latency_ms";
                  the current mode applies to it too (429, 500, garbage, hang)
  POST /control  also {"transcript": TEXT, "transcription_latency_ms": N}
  POST /control  also {"stream_ms": N, "stream_chunks": K, "ignore_stream": bool}: a request
                  with "stream": true is answered text/event-stream (chunked): the answer's
                  JSON text in K content deltas (default 8) spread over N ms (default 0), each
                  event written in two pieces (split mid-line), then a usage chunk when
                  stream_options.include_usage, then "data: [DONE]"; "latency_ms" comes before
                  the first delta. "ignore_stream": answer such requests with one plain JSON
                  completion, as a server that does not stream would.
  A chat completion whose user content holds an image_url part (an image's description,
  ai.vision) is answered in plain text: the description set with "description".
  POST <any prefix>/embeddings  {"model", "input": TEXT} -> {"data": [{"embedding": [256 floats]}],
                  "usage": {"prompt_tokens", "total_tokens"}}: embed(TEXT), deterministic, so
                  paraphrases are close and different requests are not. Counted apart from the
                  chat calls (GET /calls "embeddings", "embedding_inputs"); its own mode
                  (POST /control {"embeddings_mode": "ok"|"500"|"hang", "embeddings_latency_ms": N})
  POST /control  {"mode": "ok"|"429"|"500"|"garbage"|"hang"|"odd_intent"|"no_critical"|
                  "long_hint"|"no_hint"|"cut", "latency_ms": N,
                  "retry_after": S, "times": K}   (fields optional; "times": the mode
                  applies to the next K calls, then "ok" returns)
  GET  /calls    {"count": N, "models": [...], "by_model": {...}, "calls": [{"t", "model",
                  "mode", "status", "user", "body"}, ...]}  (the last 10000 calls)
  POST /reset    forgets the calls, back to "ok" with no latency
  GET  /healthz

"ok" answers derive the intent and the critical flag from Portuguese keywords in the new
customer messages (the text after "Mensagens novas do cliente:", as worker/ai.c writes
it), so hints are meaningful. Labelled mode (FakeAI(labels=..., label_error=E), benchmark
only): a text found in labels {text: (intent, critical)} is answered with its label, as a
model that is always right would; a share E of the labelled texts (chosen by a hash of the
text, so every run and every call on that text alike) gets another intent instead, a
model's mistakes. A text not in labels falls back to the keywords (GET /calls "answers"
counts labelled, wrong and keyword answers). The odd modes answer 200 with a completion a real model may
write: "odd_intent" says "intent": "technical", "no_critical" leaves "critical" out,
"long_hint" writes a 3,000-character hint, "no_hint" leaves the hint out. "cut" streams half of
the deltas of a streamed answer and then drops the connection (no answer at all when not
streamed): a stream broken midway. A bot-mode request
(its system prompt asks for "handoff") gets {"answer": BOT_ANSWERS[intent], "handoff": false},
or {"answer": "", "handoff": true} when the customer text holds one of BOT_CANNOT_HELP. Use it
in-process (FakeAI().start()) or as a program:
  python3 test/integration/fakeai.py --port 18099 [--latency-ms 1500]
"""
import argparse
import hashlib
import json
import math
import re
import unicodedata
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMBED_DIMS = 256
EMBED_MODES = ("ok", "500", "hang")
MODES = ("ok", "429", "500", "garbage", "hang", "odd_intent", "no_critical", "long_hint", "no_hint", "cut")
ODD_MODES = ("odd_intent", "no_critical", "long_hint", "no_hint")
NEW_MARKER = "Mensagens novas do cliente:"
MAX_LOG = 10000

# Checked in order: the first intent with a matching keyword wins.
INTENT_KEYWORDS = [
    ("cancel", ["cancelar", "cancelamento", "cancela ", "portabilidade", "encerrar o contrato", "rescindir"]),
    ("complaint", ["reclama", "absurdo", "pessimo", "péssimo", "descaso", "ninguem resolve", "ninguém resolve",
                   "vergonha", "insatisfeit", "procon", "anatel"]),
    ("outage", ["sem internet", "internet caiu", "caiu", "sem sinal", "lenta", "lento", "nao funciona",
                "não funciona", "sem conexao", "sem conexão", "oscilando", "roteador", "wifi", "wi-fi",
                "sem linha", "linha muda"]),
    ("billing", ["fatura", "boleto", "cobranca", "cobrança", "cobrado", "pagamento", "paguei", "pagar",
                 "segunda via", "pix", "vencimento", "valor", "debito", "débito", "conta "]),
    ("sales", ["plano", "planos", "contratar", "assinar", "upgrade", "mega", "giga", "preco", "preço",
               "promocao", "promoção", "oferta", "combo", "instalacao", "instalação"]),
]
CRITICAL_KEYWORDS = ["urgente", "urgência", "urgencia", "emergencia", "emergência", "fraude", "golpe", "clonad",
                     "procon", "advogado", "processo", "justica", "justiça", "juizado", "anatel", "hospital",
                     "oxigenio", "oxigênio", "home care", "aparelho medico", "aparelho médico", "saude", "saúde"]
HINTS = {
    "billing": "Confirme o titular, localize a fatura do mês citado e explique cada cobrança; se houver valor "
               "indevido, abra a contestação e informe o protocolo.",
    "sales": "Pergunte como a internet é usada em casa e confirme a cobertura pelo CEP antes de apresentar o "
             "plano mais adequado.",
    "outage": "Verifique se há falha massiva na região e o status do equipamento; se não houver, oriente o teste "
              "pelo cabo e agende a visita técnica com protocolo.",
    "complaint": "Reconheça a frustração sem se defender, peça os protocolos anteriores e assuma o caso com um "
                 "prazo de retorno real.",
    "cancel": "Pergunte o motivo do cancelamento antes de qualquer oferta e, se o cliente mantiver a decisão, "
              "conclua sem dificultar e informe o protocolo.",
    "other": "Cumprimente o cliente pelo nome e pergunte como pode ajudar.",
}


BOT_ANSWERS = {
    "billing": "A segunda via da sua fatura está no app, em Minhas faturas, com o código Pix.",
    "sales": "Temos planos de 300 mega a 1 giga; me diga seu CEP que eu confirmo a cobertura.",
    "outage": "Reinicie o roteador tirando da tomada por 30 segundos; se não voltar, me avise.",
    "complaint": "Sinto muito pelo transtorno; me conte o que aconteceu que eu verifico.",
    "cancel": "Posso ajudar com o cancelamento; qual o motivo?",
    "other": "Nossas lojas abrem de segunda a sábado, das 9h às 18h.",
}
BOT_CANNOT_HELP = ["contrato empresarial", "renegociar a divida", "renegociar a dívida"]


def classify(text):
    """(intent, critical) of a customer text, by keywords."""
    t = " " + text.lower() + " "
    intent = "other"
    for name, words in INTENT_KEYWORDS:
        if any(w in t for w in words):
            intent = name
            break
    critical = any(w in t for w in CRITICAL_KEYWORDS)
    return intent, critical


def label_answer(text, labels, error):
    """(intent, critical, wrong) for text from labels {text: (intent, critical)}: the label's,
    or, for the share `error` of texts picked by their hash, another intent (picked by the
    hash too); None when neither the text nor any of its lines is labelled (several new
    messages: the last labelled one decides, as the request comes last)."""
    label = labels.get(text.strip())
    if label is None:
        label = next((labels[l.strip()] for l in reversed(text.split("\n")) if l.strip() in labels), None)
    if label is None:
        return None
    intent, critical = label
    h = int.from_bytes(hashlib.sha256(text.strip().encode()).digest()[:8], "little")
    if error > 0 and (h % 100000) < error * 100000:
        others = [name for name in HINTS if name != intent]
        return others[(h >> 20) % len(others)], critical, True
    return intent, critical, False


def _feature_index(feature):
    h = hashlib.md5(feature.encode()).digest()
    return int.from_bytes(h[:4], "little") % EMBED_DIMS, 1.0 if h[4] & 1 else -1.0


# What a real embeddings model knows and a bag of words does not: words of one meaning land
# together. A generic telecom lexicon (not drawn from any test set): word -> concept.
EMBED_CONCEPTS = {
    "bill": "fatura boleto conta cobranca cobrado cobraram cobrou debito valor mensalidade",
    "copy": "segunda 2a via copia",
    "pay": "pagar paguei pago pagamento pix quitar",
    "down": "caiu cai parou sem nao funciona oscilando lenta lento instavel queda fora",
    "net": "internet conexao wifi sinal rede servico",
    "router": "roteador modem aparelho equipamento",
    "cancel": "cancelar cancelamento encerrar rescindir desistir sair portabilidade",
    "plan": "plano pacote assinatura combo mega giga velocidade",
    "buy": "contratar assinar comprar adquirir mudar trocar upgrade aumentar",
    "price": "preco quanto custa valores promocao oferta desconto",
    "angry": "absurdo pessimo ridiculo vergonha descaso palhacada horrivel",
    "nobody": "ninguem resolve resolveu responde",
    "visit": "tecnico visita agendar agendamento instalacao reparo",
    "thanks": "obrigado obrigada obg vlw valeu agradeco",
    "ok": "ok certo entendi blz beleza perfeito",
    "again": "denovo novo novamente outra vez",
}
EMBED_WORD_CONCEPT = {w: c for c, ws in EMBED_CONCEPTS.items() for w in ws.split()}
EMBED_STOPWORDS = set("""a o as os um uma uns umas de do da dos das no na nos nas em e ou que pra para por com
    me mim meu minha meus minhas eu voce vc vcs voces seu sua ele ela isso esse essa este esta ai aqui la
    ja mas se tem ta to esta estou foi ser era nem so tb tambem mais muito bem oi ola bom boa dia tarde noite
    tudo td gente entao ne assim favor pfv quero queria gostaria preciso manda mandar agora hoje""".split())


def embed(text):
    """A deterministic stand-in for an embeddings model: the text folded (case, accents,
    punctuation), function words and bare request verbs dropped, each word mapped to its concept (EMBED_CONCEPTS:
    "boleto" and "fatura" are one thing, as a real model would place them), then a hashed bag
    of those concepts (weight 1) and the character trigrams of each word (0.1 each, so a typo
    costs little) in EMBED_DIMS signed buckets, L2-normalised. A paraphrase that says the same
    things in other words is close; another request shares few concepts and is not."""
    t = unicodedata.normalize("NFKD", str(text).lower())
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    words = [w for w in re.findall(r"[a-z0-9]+", t) if w not in EMBED_STOPWORDS]
    v = [0.0] * EMBED_DIMS
    feats = []
    for w in words:
        stem = w[:-1] if len(w) > 4 and w.endswith("s") else w
        feats.append(("c:" + EMBED_WORD_CONCEPT.get(w, EMBED_WORD_CONCEPT.get(stem, stem)), 1.0))
        padded = f"^{stem}$"
        feats += [("#" + padded[i:i + 3], 0.1) for i in range(len(padded) - 2)]
    for f, weight in feats:
        i, sign = _feature_index(f)
        v[i] += sign * weight
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 6) for x in v]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))


def new_messages(body):
    """The customer text the client asked about: after the marker in the last user message."""
    msgs = body.get("messages") if isinstance(body, dict) else None
    users = [m.get("content", "") for m in msgs or [] if isinstance(m, dict) and m.get("role") == "user"]
    text = users[-1] if users else ""
    if not isinstance(text, str):
        text = json.dumps(text)
    i = text.rfind(NEW_MARKER)
    return text[i + len(NEW_MARKER):].strip() if i >= 0 else text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096  # listen backlog: the worker opens hundreds of connections at once


class FakeAI:
    """The server; thread-safe state, one thread per connection."""

    def __init__(self, host="127.0.0.1", port=0, latency_ms=0, labels=None, label_error=0.0):
        self.host = host
        self.labels = {str(k).strip(): (v[0], bool(v[1])) for k, v in (labels or {}).items()}
        self.label_error = float(label_error)
        self.answers = {"labelled": 0, "wrong": 0, "keywords": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.mode = "ok"
        self.latency_ms = latency_ms
        self.retry_after = 1
        self.times = None  # calls left in the current mode, None = forever
        self.count = 0
        self.log = []
        self.by_model = {}
        self.transcript = "oi, minha internet caiu desde ontem e o roteador está piscando vermelho"
        self.transcription_latency_ms = 0
        self.stream_ms, self.stream_chunks, self.ignore_stream = 0, 8, False
        self.description = "Foto de um roteador com a luz de internet vermelha acesa."
        self.embeddings_mode, self.embeddings_latency_ms, self.embeddings, self.embedding_inputs = "ok", 0, 0, []
        # one thread per connection: small stacks so the benchmark's thousands of calls fit
        # (process-wide setting, plenty for these handlers)
        threading.stack_size(512 * 1024)
        self.httpd = _Server((host, port), self._handler_class())
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self._thread = None

    # ---- in-process control (the same as the HTTP endpoints)
    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()  # releases hanging and delayed answers
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def control(self, mode=None, latency_ms=None, retry_after=None, times=None, transcript=None,
                transcription_latency_ms=None, stream_ms=None, stream_chunks=None, ignore_stream=None,
                description=None, embeddings_mode=None, embeddings_latency_ms=None):
        with self._lock:
            if embeddings_mode is not None:
                if embeddings_mode not in EMBED_MODES:
                    raise ValueError(f"embeddings_mode must be one of {', '.join(EMBED_MODES)}")
                self.embeddings_mode = embeddings_mode
            if embeddings_latency_ms is not None:
                self.embeddings_latency_ms = max(0, int(embeddings_latency_ms))
            if stream_ms is not None:
                self.stream_ms = max(0, int(stream_ms))
            if stream_chunks is not None:
                self.stream_chunks = max(1, int(stream_chunks))
            if ignore_stream is not None:
                self.ignore_stream = bool(ignore_stream)
            if description is not None:
                self.description = str(description)
            if transcript is not None:
                self.transcript = str(transcript)
            if transcription_latency_ms is not None:
                self.transcription_latency_ms = max(0, int(transcription_latency_ms))
            if mode is not None:
                if mode not in MODES:
                    raise ValueError(f"mode must be one of {', '.join(MODES)}")
                self.mode = mode
                self.times = None
            if latency_ms is not None:
                self.latency_ms = max(0, int(latency_ms))
            if retry_after is not None:
                self.retry_after = max(0, int(retry_after))
            if times is not None:
                self.times = max(0, int(times))
            return self.state()

    def state(self):
        return {"mode": self.mode, "latency_ms": self.latency_ms, "retry_after": self.retry_after,
                "times": self.times, "count": self.count, "transcription_latency_ms": self.transcription_latency_ms,
                "stream_ms": self.stream_ms, "stream_chunks": self.stream_chunks, "ignore_stream": self.ignore_stream,
                "embeddings_mode": self.embeddings_mode, "embeddings_latency_ms": self.embeddings_latency_ms,
                "embeddings": self.embeddings}

    def reset(self):
        with self._lock:
            self.mode, self.latency_ms, self.retry_after, self.times = "ok", 0, 1, None
            self.stream_ms, self.stream_chunks, self.ignore_stream = 0, 8, False
            self.count, self.log, self.by_model = 0, [], {}
            self.answers = {"labelled": 0, "wrong": 0, "keywords": 0}
            self.embeddings_mode, self.embeddings_latency_ms, self.embeddings, self.embedding_inputs = "ok", 0, 0, []

    def calls(self):
        with self._lock:
            return {"count": self.count, "models": [c["model"] for c in self.log], "by_model": dict(self.by_model),
                    "calls": list(self.log), "embeddings": self.embeddings, "answers": dict(self.answers),
                    "embedding_inputs": list(self.embedding_inputs)}

    # ---- the API
    def _next_mode(self):
        """Mode, latency and Retry-After for a new call (and counts it)."""
        with self._lock:
            mode = self.mode
            if self.times is not None:
                self.times -= 1
                if self.times <= 0:
                    self.mode, self.times = "ok", None
            return mode, self.latency_ms, self.retry_after

    def _record(self, body, mode):
        model = body.get("model") if isinstance(body, dict) else None
        entry = {"t": time.time(), "model": model, "mode": mode, "status": None, "user": new_messages(body),
                 "body": body}
        with self._lock:
            self.count += 1
            self.by_model[str(model)] = self.by_model.get(str(model), 0) + 1
            self.log.append(entry)
            if len(self.log) > MAX_LOG:
                del self.log[: len(self.log) - MAX_LOG]
        return entry

    def _completion(self, body, mode="ok"):
        users = [m.get("content") for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], list) and any(isinstance(p, dict) and p.get("type") == "image_url"
                                                         for p in users[-1]):
            answer = self.description
            return {"id": f"chatcmpl-fake-{self.count}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020}}
        text = new_messages(body)
        labelled = label_answer(text, self.labels, self.label_error) if self.labels else None
        intent, critical = labelled[:2] if labelled else classify(text)
        with self._lock:
            self.answers["keywords" if labelled is None else "labelled"] += 1
            self.answers["wrong"] += bool(labelled and labelled[2])
        system = " ".join(m.get("content", "") for m in body.get("messages", [])
                          if isinstance(m, dict) and m.get("role") == "system" and isinstance(m.get("content"), str))
        if '"handoff"' in system:
            if any(w in text.lower() for w in BOT_CANNOT_HELP):
                answer = json.dumps({"answer": "", "handoff": True})
            else:
                answer = json.dumps({"answer": BOT_ANSWERS[intent], "handoff": False}, ensure_ascii=False)
        else:
            obj = {"intent": intent, "critical": critical, "hint": HINTS[intent]}
            if mode == "odd_intent":
                obj["intent"] = "technical"
            elif mode == "no_critical":
                del obj["critical"]
            elif mode == "long_hint":
                obj["hint"] = " ".join([HINTS[intent]] * (3000 // len(HINTS[intent]) + 1))[:3000]
            elif mode == "no_hint":
                del obj["hint"]
            answer = json.dumps(obj, ensure_ascii=False)
        prompt_chars = sum(len(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict)
                           and isinstance(m.get("content"), str))
        usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(answer) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"chatcmpl-fake-{self.count}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop"}],
                "usage": usage}

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def _send(self, status, obj=None, raw=None, headers=None):
                data = raw if raw is not None else json.dumps(obj, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json" if raw is None else "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the client gave up (timeout)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                self.raw = raw
                try:
                    return json.loads(raw or b"{}")
                except ValueError:
                    return None

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/calls":
                    self._send(200, fake.calls())
                elif path == "/healthz":
                    self._send(200, {"ok": True})
                elif path == "/control":
                    with fake._lock:
                        self._send(200, fake.state())
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                path = self.path.split("?", 1)[0]
                body = self._body()
                if path == "/control":
                    if not isinstance(body, dict):
                        return self._send(400, {"error": "body must be a JSON object"})
                    try:
                        state = fake.control(body.get("mode"), body.get("latency_ms"), body.get("retry_after"),
                                             body.get("times"), body.get("transcript"),
                                             body.get("transcription_latency_ms"), body.get("stream_ms"),
                                             body.get("stream_chunks"), body.get("ignore_stream"),
                                             body.get("description"), body.get("embeddings_mode"),
                                             body.get("embeddings_latency_ms"))
                    except (ValueError, TypeError) as e:
                        return self._send(400, {"error": str(e)})
                    return self._send(200, state)
                if path == "/reset":
                    fake.reset()
                    return self._send(200, fake.state())
                if path.endswith("/audio/transcriptions"):
                    return self._transcription()
                if path.endswith("/embeddings"):
                    return self._embeddings(body)
                if not path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    return self._send(400, {"error": {"message": "messages is required", "type": "invalid_request"}})
                mode, latency_ms, retry_after = fake._next_mode()
                entry = fake._record(body, mode)
                if not self._delay(mode, latency_ms):
                    return
                with fake._lock:
                    streamed = body.get("stream") is True and not fake.ignore_stream
                    stream_ms, chunks = fake.stream_ms, fake.stream_chunks
                entry["stream"] = streamed
                if streamed and (mode in ("ok", "cut") or mode in ODD_MODES):
                    entry["status"] = 200
                    return self._stream(fake._completion(body, "ok" if mode == "cut" else mode), body, stream_ms,
                                        chunks, cut=mode == "cut")
                if mode == "cut":
                    self.close_connection = True
                    return
                if mode == "ok" or mode in ODD_MODES:
                    entry["status"] = 200
                    self._send(200, fake._completion(body, mode))
                elif mode == "429":
                    entry["status"] = 429
                    self._send(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                               headers={"Retry-After": str(retry_after)})
                elif mode == "500":
                    entry["status"] = 500
                    self._send(500, {"error": {"message": "The server had an error", "type": "server_error"}})
                else:  # garbage: 200 that is not a completion
                    entry["status"] = 200
                    self._send(200, raw=b"<html><body>upstream exploded</body></html>")

            def _chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _event(self, obj):
                """One server-sent event, written in two HTTP chunks split mid-line (mid UTF-8
                sequence too, when the middle byte falls in one)."""
                data = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)) + "\n\n").encode()
                half = len(data) // 2
                self._chunk(data[:half])
                self._chunk(data[half:])

            def _stream(self, completion, body, stream_ms, chunks, cut=False):
                """completion's content as a chat-completions event stream."""
                content = completion["choices"][0]["message"]["content"]
                step = max(1, -(-len(content) // chunks))
                pieces = [content[i:i + step] for i in range(0, len(content), step)]
                base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                        "model": completion["model"]}
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self._event(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "finish_reason": None}]))
                    for k, piece in enumerate(pieces):
                        if cut and k >= len(pieces) // 2:
                            self.close_connection = True  # no terminating chunk: a broken stream
                            return
                        if k and stream_ms and fake._stop.wait(stream_ms / 1000.0 / max(1, len(pieces) - 1)):
                            self.close_connection = True
                            return
                        self._event(dict(base, choices=[{"index": 0, "delta": {"content": piece},
                                                         "finish_reason": None}]))
                    self._event(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self._event(dict(base, choices=[], usage=completion["usage"]))
                    self._event("[DONE]")
                    self._chunk(b"")
                except OSError:
                    self.close_connection = True

            def _delay(self, mode, latency_ms):
                """Hangs ("hang", until the server stops) or waits latency_ms; False when the
                connection is to be dropped without an answer."""
                if mode == "hang" or (latency_ms and fake._stop.wait(latency_ms / 1000.0)):
                    if mode == "hang":
                        fake._stop.wait(3600)  # until the server stops; the client times out first
                    self.close_connection = True
                    return False
                return True

            def _embeddings(self, body):
                if not isinstance(body, dict) or not isinstance(body.get("input"), str) or not body.get("model"):
                    return self._send(400, {"error": {"message": "model and a string input are required",
                                                      "type": "invalid_request"}})
                with fake._lock:
                    fake.embeddings += 1
                    fake.embedding_inputs.append(body["input"])
                    del fake.embedding_inputs[:-MAX_LOG]
                    mode, latency_ms = fake.embeddings_mode, fake.embeddings_latency_ms
                if not self._delay(mode, latency_ms):
                    return
                if mode == "500":
                    return self._send(500, {"error": {"message": "The server had an error"}})
                tokens = max(1, len(body["input"]) // 4)
                self._send(200, {"object": "list", "model": body["model"],
                                 "data": [{"object": "embedding", "index": 0, "embedding": embed(body["input"])}],
                                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

            def _transcription(self):
                ctype = self.headers.get("Content-Type", "")
                fields = parse_multipart(ctype, self.raw)
                if fields is None or "file" not in fields or "model" not in fields:
                    return self._send(400, {"error": {"message": "multipart with file and model is required"}})
                mode, _, retry_after = fake._next_mode()
                with fake._lock:
                    latency_ms, transcript = fake.transcription_latency_ms, fake.transcript
                body = {"model": fields["model"].decode(), "language": fields.get("language", b"").decode(),
                        "file_len": len(fields["file"]), "file_sha256": hashlib.sha256(fields["file"]).hexdigest(),
                        "kind": "transcription"}
                entry = fake._record(body, mode)
                if not self._delay(mode, latency_ms):
                    return
                entry["status"] = {"ok": 200, "429": 429, "500": 500}.get(mode, 200)
                if mode == "ok":
                    self._send(200, {"text": transcript})
                elif mode == "429":
                    self._send(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": str(retry_after)})
                elif mode == "500":
                    self._send(500, {"error": {"message": "The server had an error"}})
                else:
                    self._send(200, raw=b"<html>upstream exploded</html>")

        return Handler


def parse_multipart(content_type, raw):
    """{name: bytes} of a multipart/form-data body; None when it is not one."""
    if "boundary=" not in content_type:
        return None
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    out = {}
    for part in raw.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        name = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:") and b'name="' in line:
                name = line.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        if name is not None:
            out[name] = data[:-2] if data.endswith(b"\r\n") else data
    return out


def main():
    ap = argparse.ArgumentParser(description="fake OpenAI-compatible chat-completions server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18099)
    ap.add_argument("--mode", default="ok", choices=MODES)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--retry-after", type=int, default=1)
    args = ap.parse_args()
    fake = FakeAI(args.host, args.port, args.latency_ms)
    fake.control(mode=args.mode, retry_after=args.retry_after)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fake.start()
    print(f"fakeai listening on {fake.base_url}", flush=True)
    stop.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
