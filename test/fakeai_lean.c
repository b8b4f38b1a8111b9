/*
 * fakeai_lean: the benchmarks' AI (test/bench_pg.py $BENCH_PG_LEAN_AI, issue 19). The suite's
 * fake AI (test/integration/fakeai.py: a thread per connection, every failure mode, a call
 * log) cost 250-260 us of CPU per message at 2,000 msg/s, a quarter of this 2-core machine,
 * taken from the system it was there to measure; a real provider answers from elsewhere.
 * This one does only what the AI benchmarks need, on one libevent loop: POST
 * .../chat/completions answered after --latency-ms, its hint the one fakeai.py's "ok" mode
 * gives (the same keywords, intents, critical words and hint texts, so the cache's and the
 * rules' agreement is the same), streamed as fakeai.py streams it (stream_ms 0: a role
 * event, the content in 8 pieces, the stop, the usage when asked, [DONE]) or one JSON
 * completion; anything else 404. Usage: fakeai_lean --port P --latency-ms MS. Runs until
 * SIGTERM or SIGINT.
 */
#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define LEAN_NEW_MARKER "Mensagens novas do cliente:"
#define LEAN_PIECES 8

/* fakeai.py's INTENT_KEYWORDS (checked in order: the first intent with a matching keyword
 * wins), CRITICAL_KEYWORDS and HINTS */
static const struct {
	const char *intent;
	const char *words[17];
	const char *hint;
} lean_intents[] = {
	{"cancel",
	 {"cancelar", "cancelamento", "cancela ", "portabilidade", "encerrar o contrato", "rescindir"},
	 "Pergunte o motivo do cancelamento antes de qualquer oferta e, se o cliente mantiver a decisão, "
	 "conclua sem dificultar e informe o protocolo."},
	{"complaint",
	 {"reclama", "absurdo", "pessimo", "péssimo", "descaso", "ninguem resolve", "ninguém resolve", "vergonha",
	  "insatisfeit", "procon", "anatel"},
	 "Reconheça a frustração sem se defender, peça os protocolos anteriores e assuma o caso com um prazo de "
	 "retorno real."},
	{"outage",
	 {"sem internet", "internet caiu", "caiu", "sem sinal", "lenta", "lento", "nao funciona", "não funciona",
	  "sem conexao", "sem conexão", "oscilando", "roteador", "wifi", "wi-fi", "sem linha", "linha muda"},
	 "Verifique se há falha massiva na região e o status do equipamento; se não houver, oriente o teste pelo "
	 "cabo e agende a visita técnica com protocolo."},
	{"billing",
	 {"fatura", "boleto", "cobranca", "cobrança", "cobrado", "pagamento", "paguei", "pagar", "segunda via", "pix",
	  "vencimento", "valor", "debito", "débito", "conta "},
	 "Confirme o titular, localize a fatura do mês citado e explique cada cobrança; se houver valor indevido, "
	 "abra a contestação e informe o protocolo."},
	{"sales",
	 {"plano", "planos", "contratar", "assinar", "upgrade", "mega", "giga", "preco", "preço", "promocao",
	  "promoção", "oferta", "combo", "instalacao", "instalação"},
	 "Pergunte como a internet é usada em casa e confirme a cobertura pelo CEP antes de apresentar o plano mais "
	 "adequado."},
};
static const char *const lean_other_hint = "Cumprimente o cliente pelo nome e pergunte como pode ajudar.";
static const char *const lean_critical[] = {
	"urgente", "urgência", "urgencia", "emergencia", "emergência", "fraude", "golpe", "clonad",
	"procon", "advogado", "processo", "justica", "justiça", "juizado", "anatel", "hospital",
	"oxigenio", "oxigênio", "home care", "aparelho medico", "aparelho médico", "saude", "saúde", NULL};

static struct event_base *lean_base;
static int lean_latency_ms;
static unsigned long lean_count;

/* An answer waiting for its latency. */
typedef struct {
	struct evhttp_request *req;
	struct event *timer;
	char *content;   /* the assistant's message */
	char *model;
	bool stream, usage;
	int prompt_tokens;
} lean_call_t;

/* The customer text asked about: after the marker in the last user message (fakeai.py's
 * new_messages), lower-cased (ASCII), padded with a space each side. Caller frees. */
static char *lean_new_text(const cJSON *body, int *prompt_chars)
{
	const cJSON *msgs = cJSON_GetObjectItem(body, "messages"), *m;
	const char *last = "";
	*prompt_chars = 0;
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *content = cJSON_GetObjectItem(m, "content"), *role = cJSON_GetObjectItem(m, "role");
		if (!cJSON_IsString(content))
			continue;
		*prompt_chars += (int)strlen(content->valuestring);
		if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0)
			last = content->valuestring;
	}
	const char *at = strstr(last, LEAN_NEW_MARKER), *next;
	while (at && (next = strstr(at + 1, LEAN_NEW_MARKER)))
		at = next;
	const char *text = at ? at + strlen(LEAN_NEW_MARKER) : last;
	size_t n = strlen(text);
	char *out = malloc(n + 3);
	out[0] = ' ';
	for (size_t i = 0; i < n; i++)
		out[i + 1] = (char)tolower((unsigned char)text[i]);
	out[n + 1] = ' ';
	out[n + 2] = '\0';
	return out;
}

/* {"intent","critical","hint"} for the text, as fakeai.py's classify and _completion. */
static char *lean_answer(const char *text)
{
	const char *intent = "other", *hint = lean_other_hint;
	bool critical = false;
	for (size_t k = 0; k < sizeof(lean_intents) / sizeof(lean_intents[0]) && hint == lean_other_hint; k++)
		for (int w = 0; lean_intents[k].words[w]; w++)
			if (strstr(text, lean_intents[k].words[w])) {
				intent = lean_intents[k].intent;
				hint = lean_intents[k].hint;
				break;
			}
	for (int w = 0; lean_critical[w] && !critical; w++)
		critical = strstr(text, lean_critical[w]) != NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "intent", intent);
	cJSON_AddBoolToObject(o, "critical", critical);
	cJSON_AddStringToObject(o, "hint", hint);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* One chat-completions object (a chunk when delta) as a string. */
static char *lean_object(const lean_call_t *c, const char *object, cJSON *choices, bool with_usage)
{
	cJSON *o = cJSON_CreateObject();
	char id[48];
	snprintf(id, sizeof(id), "chatcmpl-lean-%lu", lean_count);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "object", object);
	cJSON_AddNumberToObject(o, "created", (double)time(NULL));
	cJSON_AddStringToObject(o, "model", c->model);
	cJSON_AddItemToObject(o, "choices", choices);
	if (with_usage) {
		int out_tokens = (int)strlen(c->content) / 4;
		cJSON *u = cJSON_AddObjectToObject(o, "usage");
		cJSON_AddNumberToObject(u, "prompt_tokens", c->prompt_tokens);
		cJSON_AddNumberToObject(u, "completion_tokens", out_tokens > 0 ? out_tokens : 1);
		cJSON_AddNumberToObject(u, "total_tokens", c->prompt_tokens + (out_tokens > 0 ? out_tokens : 1));
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* A choices array of one: {"index":0, key: value, "finish_reason": finish or null}. */
static cJSON *lean_choice(const char *key, cJSON *value, const char *finish)
{
	cJSON *list = cJSON_CreateArray(), *ch = cJSON_CreateObject();
	cJSON_AddNumberToObject(ch, "index", 0);
	cJSON_AddItemToObject(ch, key, value);
	if (finish)
		cJSON_AddStringToObject(ch, "finish_reason", finish);
	else
		cJSON_AddNullToObject(ch, "finish_reason");
	cJSON_AddItemToArray(list, ch);
	return list;
}

static cJSON *lean_delta(const char *role, const char *content)
{
	cJSON *d = cJSON_CreateObject();
	if (role)
		cJSON_AddStringToObject(d, "role", role);
	if (content)
		cJSON_AddStringToObject(d, "content", content);
	return d;
}

static void lean_event(struct evbuffer *out, char *json)
{
	evbuffer_add_printf(out, "data: %s\n\n", json);
	free(json);
}

static void lean_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	lean_call_t *c = arg;
	(void)fd, (void)what;
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *headers = evhttp_request_get_output_headers(c->req);
	if (c->stream) {
		evhttp_add_header(headers, "Content-Type", "text/event-stream");
		evhttp_add_header(headers, "Cache-Control", "no-cache");
		lean_event(out, lean_object(c, "chat.completion.chunk", lean_choice("delta", lean_delta("assistant", ""), NULL),
					    false));
		size_t len = strlen(c->content), step = (len + LEAN_PIECES - 1) / LEAN_PIECES;
		for (size_t i = 0, end; i < len; i = end) {
			/* pieces of step bytes, each ending at a UTF-8 character's start */
			end = i + step < len ? i + step : len;
			while (end < len && ((unsigned char)c->content[end] & 0xC0) == 0x80)
				end++;
			char *piece = strndup(c->content + i, end - i);
			lean_event(out, lean_object(c, "chat.completion.chunk", lean_choice("delta", lean_delta(NULL, piece), NULL),
						    false));
			free(piece);
		}
		lean_event(out, lean_object(c, "chat.completion.chunk", lean_choice("delta", lean_delta(NULL, NULL), "stop"),
					    false));
		if (c->usage)
			lean_event(out, lean_object(c, "chat.completion.chunk", cJSON_CreateArray(), true));
		evbuffer_add_printf(out, "data: [DONE]\n\n");
	} else {
		evhttp_add_header(headers, "Content-Type", "application/json");
		cJSON *msg = cJSON_CreateObject();
		cJSON_AddStringToObject(msg, "role", "assistant");
		cJSON_AddStringToObject(msg, "content", c->content);
		char *s = lean_object(c, "chat.completion", lean_choice("message", msg, "stop"), true);
		evbuffer_add(out, s, strlen(s));
		free(s);
	}
	evhttp_send_reply(c->req, 200, "OK", out);
	evbuffer_free(out);
	event_free(c->timer);
	free(c->content);
	free(c->model);
	free(c);
}

static void lean_request_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *q = strchr(uri, '?');
	size_t path_len = q ? (size_t)(q - uri) : strlen(uri), suffix = strlen("/chat/completions");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || path_len < suffix ||
	    strncmp(uri + path_len - suffix, "/chat/completions", suffix) != 0) {
		evhttp_send_error(req, 404, "only POST .../chat/completions");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	cJSON *body = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n);
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		evhttp_send_error(req, 400, "a JSON object is required");
		return;
	}
	lean_call_t *c = calloc(1, sizeof(*c));
	int prompt_chars;
	char *text = lean_new_text(body, &prompt_chars);
	const cJSON *model = cJSON_GetObjectItem(body, "model");
	c->req = req;
	c->content = lean_answer(text);
	c->model = strdup(cJSON_IsString(model) ? model->valuestring : "");
	c->stream = cJSON_IsTrue(cJSON_GetObjectItem(body, "stream"));
	c->usage = cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "stream_options"), "include_usage"));
	c->prompt_tokens = prompt_chars / 4 > 0 ? prompt_chars / 4 : 1;
	free(text);
	cJSON_Delete(body);
	lean_count++;
	struct timeval tv = {lean_latency_ms / 1000, (lean_latency_ms % 1000) * 1000};
	c->timer = evtimer_new(lean_base, lean_answer_cb, c);
	evtimer_add(c->timer, &tv);
}

static void lean_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what, (void)arg;
	event_base_loopbreak(lean_base);
}

int main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--latency-ms") == 0)
			lean_latency_ms = atoi(argv[i + 1]);
	}
	if (port <= 0 || lean_latency_ms < 0 || argc % 2 == 0) {
		fprintf(stderr, "usage: fakeai_lean --port P --latency-ms MS\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lean_base = event_base_new();
	struct evhttp *http = evhttp_new(lean_base);
	evhttp_set_max_body_size(http, 4 << 20);
	evhttp_set_gencb(http, lean_request_cb, NULL);
	/* a backlog for the hundreds of connections a worker opens at once */
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 4096) != 0 ||
	    evutil_make_socket_nonblocking(fd) != 0 || evhttp_accept_socket(http, fd) != 0) {
		fprintf(stderr, "fakeai_lean: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
		return 1;
	}
	struct event *term = evsignal_new(lean_base, SIGTERM, lean_stop_cb, NULL);
	struct event *intr = evsignal_new(lean_base, SIGINT, lean_stop_cb, NULL);
	event_add(term, NULL);
	event_add(intr, NULL);
	event_base_dispatch(lean_base);
	event_free(term);
	event_free(intr);
	evhttp_free(http);
	event_base_free(lean_base);
	return 0;
}
