/*
 * test_event: the atende.events contract (common/event.c). Every type goes through its
 * builder and back through the parser with every field intact; the exact bytes are pinned
 * where consoles and the other consumers read them; malformed messages are refused with a
 * reason.
 */
#include "event.h"
#include "unit.h"

#include <stdlib.h>

/* Builds json (taken) back into e; false when the parser refused it. */
static bool reparse(evt_t *e, char *json, size_t len)
{
	char why[160] = "";
	bool ok = json && evt_parse(e, json, len, why, sizeof(why));
	if (!ok)
		printf("  refused: %s\n", why);
	free(json);
	return ok;
}

TEST(message_round_trips)
{
	size_t len;
	evt_t e;
	cJSON *media = cJSON_Parse("{\"id\":\"m1\",\"mime\":\"image/jpeg\"}");
	evt_route_t r = {.company = 2, .conversation = 77, .agent = 5};
	evt_message_t m = {.message_id = "ABC", .db_id = 901, .conversation_id = 77, .conversation_key = "evolution:demo:55",
			   .company_id = 2, .agent_id = 5, .domain = "suporte", .channel = "evolution:demo",
			   .customer = "55", .sender_name = NULL, .from_me = false, .kind = "image", .text = "oi \"x\"\n",
			   .media = media, .created_at = "2024-05-01T12:00:00.000Z"};
	char *json = evt_message(&r, &m, &len);
	CHECK_STR(json, "{\"type\":\"message\",\"company_id\":2,\"conversation_id\":77,\"agent_id\":5,\"data\":{"
			"\"message_id\":\"ABC\",\"db_id\":901,\"conversation_id\":77,\"conversation_key\":\"evolution:demo:55\","
			"\"company_id\":2,\"agent_id\":5,\"domain\":\"suporte\",\"channel\":\"evolution:demo\",\"customer\":\"55\","
			"\"sender_name\":null,\"from_me\":false,\"kind\":\"image\",\"text\":\"oi \\\"x\\\"\\n\","
			"\"media\":{\"id\":\"m1\",\"mime\":\"image/jpeg\"},\"created_at\":\"2024-05-01T12:00:00.000Z\"}}");
	CHECK(strlen(json) == len);
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_MESSAGE && e.route.company == 2 && e.route.conversation == 77 && e.route.agent == 5);
	CHECK_STR(e.message.message_id, "ABC");
	CHECK(e.message.db_id == 901 && e.message.agent_id == 5 && !e.message.from_me && !e.message.sender_name);
	CHECK_STR(e.message.text, "oi \"x\"\n");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e.message.media, "mime")), "image/jpeg");
	CHECK(!e.message.status && !e.message.request_id);
	evt_free(&e);
	cJSON_Delete(media);

	/* a console's reply that failed: routed to the requester, no message_id or db_id */
	cJSON *cid = cJSON_Parse("\"c-1\"");
	r.agent = 9;
	evt_message_t f = {.conversation_id = 77, .conversation_key = "k", .company_id = 2, .channel = "evolution:demo",
			   .customer = "55", .from_me = true, .kind = "text", .text = "t", .created_at = "x",
			   .status = "failed", .error = "gateway said no", .request_id = "i-1", .client_id = cid,
			   .by_agent = 9, .attempts = 3};
	json = evt_message(&r, &f, &len);
	CHECK(strstr(json, "\"message_id\":null,\"db_id\":null,") != NULL);
	CHECK(strstr(json, "\"status\":\"failed\",\"error\":\"gateway said no\",\"request_id\":\"i-1\","
			   "\"client_id\":\"c-1\",\"by_agent\":9,\"attempts\":3}}") != NULL);
	CHECK(reparse(&e, json, len));
	CHECK(!e.message.message_id && e.message.db_id == 0 && e.message.from_me && e.message.by_agent == 9);
	CHECK_STR(e.message.status, "failed");
	CHECK_STR(e.message.error, "gateway said no");
	CHECK(e.message.attempts == 3 && cJSON_IsString(e.message.client_id));
	/* written again as read (what a worker republishes from PostgreSQL) */
	char *again = evt_write(&e, &len);
	CHECK(strstr(again, "{\"type\":\"message\",\"company_id\":2,\"conversation_id\":77,\"agent_id\":9,\"data\":{") == again);
	free(again);
	evt_free(&e);
	cJSON_Delete(cid);
}

TEST(hint_round_trips)
{
	size_t len;
	evt_t e;
	const char *ids[] = {"M1", "M2"};
	evt_route_t r = {.company = 1, .conversation = 3, .agent = 0};
	evt_hint_t h = {.message_ids = ids, .n_message_ids = 2, .hint_id = 44, .conversation_id = 3,
			.conversation_key = "k", .agent_id = 0, .company_id = 1, .domain = "financeiro", .intent = "billing",
			.critical = true, .text = "Ofereça o parcelamento", .source = "rules", .from_cache = false,
			.routed = true, .model = NULL, .created_at = "c", .received_at = "r"};
	char *json = evt_hint(&r, &h, &len);
	CHECK_STR(json, "{\"type\":\"hint\",\"company_id\":1,\"conversation_id\":3,\"agent_id\":null,\"data\":{"
			"\"message_ids\":[\"M1\",\"M2\"],\"message_id\":\"M2\",\"hint_id\":44,\"conversation_id\":3,"
			"\"conversation_key\":\"k\",\"agent_id\":null,\"company_id\":1,\"domain\":\"financeiro\","
			"\"intent\":\"billing\",\"critical\":true,\"text\":\"Ofereça o parcelamento\",\"source\":\"rules\","
			"\"from_cache\":false,\"routed\":true,\"model\":null,\"created_at\":\"c\",\"received_at\":\"r\"}}");
	CHECK(reparse(&e, json, len));
	CHECK(e.hint.routed);
	CHECK(e.type == EVT_HINT && e.route.agent == 0 && e.hint.n_message_ids == 2 && e.hint.hint_id == 44);
	CHECK_STR(e.hint.message_ids[1], "M2");
	CHECK_STR(e.hint.intent, "billing");
	CHECK(e.hint.critical && !e.hint.from_cache && !e.hint.model);
	CHECK(!e.hint.partial && !e.hint.withdrawn); /* a stored hint has neither member */
	evt_free(&e);

	/* a hint being written (ai.stream), then its withdrawal */
	h.partial = true;
	h.intent = h.created_at = NULL;
	json = evt_hint(&r, &h, &len);
	CHECK(strstr(json, "\"intent\":null,") && strstr(json, "\"received_at\":\"r\",\"partial\":true}}"));
	CHECK(reparse(&e, json, len));
	CHECK(e.hint.partial && !e.hint.withdrawn && !e.hint.intent && e.hint.hint_id == 44);
	evt_free(&e);
	h.withdrawn = true;
	h.text = "";
	json = evt_hint(&r, &h, &len);
	CHECK(strstr(json, "\"partial\":true,\"withdrawn\":true}}") != NULL);
	CHECK(reparse(&e, json, len));
	CHECK(e.hint.partial && e.hint.withdrawn);
	CHECK_STR(e.hint.text, "");
	evt_free(&e);
}

TEST(typing_round_trips)
{
	size_t len;
	evt_t e;
	evt_typing_t t = {.conversation_id = 555, .agent_id = 7, .company_id = 1, .start = false,
			  .expires_ms = 1714564800000LL, .instance = "i1", .reason = "expired"};
	char *json = evt_typing(&t, &len);
	CHECK_STR(json, "{\"type\":\"typing\",\"company_id\":1,\"conversation_id\":555,\"agent_id\":7,\"data\":{"
			"\"conversation_id\":555,\"agent_id\":7,\"company_id\":1,\"state\":\"stop\","
			"\"expires_at\":\"2024-05-01T12:00:00.000Z\",\"instance\":\"i1\",\"reason\":\"expired\"}}");
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_TYPING && !e.typing.start && e.typing.expires_ms == 1714564800000LL);
	CHECK(e.route.conversation == 555 && e.route.agent == 7 && e.typing.company_id == 1);
	CHECK_STR(e.typing.instance, "i1");
	CHECK_STR(e.typing.reason, "expired");
	evt_free(&e);
	/* what a test or an older producer writes: no instance, no expiry */
	const char *bare = "{\"type\":\"typing\",\"company_id\":2,\"conversation_id\":5,\"agent_id\":6,"
			   "\"data\":{\"conversation_id\":5,\"agent_id\":6,\"state\":\"start\"}}";
	CHECK(evt_parse(&e, bare, strlen(bare), NULL, 0));
	CHECK(e.typing.start && e.typing.company_id == 2 && !e.typing.instance && e.typing.expires_ms == 0);
	evt_free(&e);
}

TEST(presence_round_trips)
{
	size_t len;
	evt_t e;
	evt_presence_t p = {.kind = EVT_PRESENCE_REPORT, .company_id = 3, .agent_id = 42, .online = true,
			    .instance = "host:1:ab", .tabs = 2, .at_ms = 1714564800123LL};
	char *json = evt_presence(&p, &len);
	CHECK_STR(json, "{\"type\":\"presence\",\"company_id\":3,\"data\":{\"agent_id\":42,\"company_id\":3,"
			"\"status\":\"online\",\"instance\":\"host:1:ab\",\"tabs\":2,\"at\":\"2024-05-01T12:00:00.123Z\"}}");
	CHECK(reparse(&e, json, len));
	CHECK(e.presence.kind == EVT_PRESENCE_REPORT && e.presence.agent_id == 42 && e.presence.tabs == 2);
	CHECK(e.presence.online && e.presence.at_ms == 1714564800123LL);
	CHECK_STR(e.presence.instance, "host:1:ab");
	evt_free(&e);

	long agents[] = {4, 9};
	int tabs[] = {1, 3};
	evt_presence_t hb = {.kind = EVT_PRESENCE_HEARTBEAT, .company_id = 3, .instance = "i1", .agents = agents,
			     .agent_tabs = tabs, .n_agents = 2};
	json = evt_presence(&hb, &len);
	CHECK(strstr(json, "\"heartbeat\":true,\"agents\":[{\"agent_id\":4,\"tabs\":1},{\"agent_id\":9,\"tabs\":3}],"));
	CHECK(reparse(&e, json, len));
	CHECK(e.presence.kind == EVT_PRESENCE_HEARTBEAT && e.presence.n_agents == 2 && e.presence.agents[1] == 9 &&
	      e.presence.agent_tabs[1] == 3);
	evt_free(&e);

	evt_presence_t ex = {.kind = EVT_PRESENCE_EXPIRY, .company_id = 3, .agent_id = 4, .instance = "dead",
			     .last_seen_ms = 1234, .by = "i1"};
	json = evt_presence(&ex, &len);
	CHECK(strstr(json, "\"status\":\"offline\",\"instance\":\"dead\",\"tabs\":0,\"expired\":true,\"last_seen\":1234,"
			   "\"by\":\"i1\","));
	CHECK(reparse(&e, json, len));
	CHECK(e.presence.kind == EVT_PRESENCE_EXPIRY && e.presence.agent_id == 4 && e.presence.tabs == 0 &&
	      e.presence.last_seen_ms == 1234);
	CHECK_STR(e.presence.by, "i1");
	evt_free(&e);

	/* what consoles of presence:C get */
	char *d = evt_presence_list_data(3, agents, 2);
	CHECK_STR(d, "{\"agents\":[4,9],\"company_id\":3}");
	free(d);
	d = evt_presence_list_data(3, NULL, 0);
	CHECK_STR(d, "{\"agents\":[],\"company_id\":3}");
	free(d);
	d = evt_presence_change_data(3, 4, false);
	CHECK_STR(d, "{\"agent_id\":4,\"company_id\":3,\"status\":\"offline\"}");
	free(d);
}

TEST(assignment_conversation_status_round_trip)
{
	size_t len;
	evt_t e;
	evt_route_t r = {.company = 1, .conversation = 8, .agent = 3};
	evt_assignment_t a = {.request_id = "i-2", .conversation_id = 8, .conversation_key = "k", .company_id = 1,
			      .channel = "evolution:demo", .customer = "55", .from_agent = 2, .to_agent = 3, .agent_id = 3,
			      .from_domain = "suporte", .domain = "financeiro", .to_domain = "financeiro", .by_agent = 2,
			      .at = "t", .created_at = "t"};
	char *json = evt_assignment(&r, &a, &len);
	CHECK(strstr(json, "\"client_id\":null,") != NULL);
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_ASSIGNMENT && e.assignment.from_agent == 2 && e.assignment.to_agent == 3 &&
	      e.assignment.by_agent == 2 && cJSON_IsNull(e.assignment.client_id));
	CHECK_STR(e.assignment.to_domain, "financeiro");
	evt_free(&e);

	evt_conversation_t c = {.conversation_id = 8, .status = "resolved", .agent_id = 3, .domain = "suporte",
				.by = "agent:3", .at = "t"};
	json = evt_conversation(&r, &c, &len);
	CHECK_STR(json, "{\"type\":\"conversation\",\"company_id\":1,\"conversation_id\":8,\"agent_id\":3,\"data\":{"
			"\"conversation_id\":8,\"status\":\"resolved\",\"agent_id\":3,\"domain\":\"suporte\","
			"\"by\":\"agent:3\",\"at\":\"t\"}}");
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_CONVERSATION && e.conversation.agent_id == 3);
	CHECK_STR(e.conversation.status, "resolved");
	CHECK_STR(e.conversation.by, "agent:3");
	evt_free(&e);

	evt_status_t st = {.message_id = 901, .provider_id = "ABC", .conversation_id = 8, .status = "read", .at = "t"};
	json = evt_status(&r, &st, &len);
	CHECK(!strstr(json, "\"error\""));
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_STATUS && e.status.message_id == 901 && e.status.conversation_id == 8);
	CHECK_STR(e.status.provider_id, "ABC");
	CHECK_STR(e.status.status, "read");
	CHECK(e.status.error == NULL);
	evt_free(&e);

	evt_status_t sf = {.message_id = 902, .provider_id = "DEF", .conversation_id = 8, .status = "failed", .at = "t",
			   .error = "Message undeliverable (code 131026)"};
	json = evt_status(&r, &sf, &len);
	CHECK_STR(json, "{\"type\":\"status\",\"company_id\":1,\"conversation_id\":8,\"agent_id\":3,\"data\":{"
			"\"message_id\":902,\"provider_id\":\"DEF\",\"conversation_id\":8,\"status\":\"failed\","
			"\"at\":\"t\",\"error\":\"Message undeliverable (code 131026)\"}}");
	CHECK(reparse(&e, json, len));
	CHECK_STR(e.status.error, "Message undeliverable (code 131026)");
	evt_free(&e);
}

TEST(reset_and_error_round_trip)
{
	size_t len;
	evt_t e;
	evt_route_t r = {.company = 1, .conversation = 0, .agent = 6};
	evt_reset_t rs = {.reason = "history no longer covers the requested seq"};
	char *json = evt_reset(&r, &rs, &len);
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_RESET && e.route.conversation == 0);
	CHECK_STR(e.reset.reason, "history no longer covers the requested seq");
	evt_free(&e);
	char *d = evt_reset_data("epoch \"changed\"");
	CHECK_STR(d, "{\"reason\":\"epoch \\\"changed\\\"\"}");
	free(d);

	cJSON *cid = cJSON_CreateNumber(12);
	evt_error_t x = {.op = "reply", .status = "refused", .error = "conversation 9 is not of company 1",
			 .request_id = "i-3", .client_id = cid, .conversation_id = 9, .company_id = 1, .agent_id = 6,
			 .at = "t", .created_at = "t"};
	json = evt_error(&r, &x, &len);
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_ERROR && e.error.conversation_id == 9 && e.error.agent_id == 6 && e.route.agent == 6);
	CHECK_STR(e.error.op, "reply");
	CHECK_STR(e.error.error, "conversation 9 is not of company 1");
	CHECK(cJSON_GetNumberValue(e.error.client_id) == 12);
	evt_free(&e);
	cJSON_Delete(cid);
}

TEST(survey_round_trips)
{
	size_t len;
	evt_t e;
	evt_route_t r = {.company = 3, .conversation = 41, .agent = 7};
	evt_survey_t v = {.survey_id = 5, .conversation_id = 41, .company_id = 3, .agent_id = 7, .domain = "suporte",
			  .kind = "nps", .score = 0, .text = "nota zero", .db_id = 900, .at = "2026-12-04T14:00:00.000Z"};
	char *json = evt_survey(&r, &v, &len);
	CHECK_STR(json, "{\"type\":\"survey\",\"company_id\":3,\"conversation_id\":41,\"agent_id\":7,\"data\":"
			"{\"survey_id\":5,\"conversation_id\":41,\"company_id\":3,\"agent_id\":7,\"domain\":\"suporte\","
			"\"kind\":\"nps\",\"score\":0,\"text\":\"nota zero\",\"db_id\":900,"
			"\"at\":\"2026-12-04T14:00:00.000Z\"}}");
	CHECK(reparse(&e, json, len));
	CHECK(e.type == EVT_SURVEY && e.route.agent == 7 && e.survey.score == 0 && e.survey.db_id == 900);
	CHECK_STR(e.survey.kind, "nps");
	CHECK_STR(e.survey.text, "nota zero");
	evt_free(&e);
	/* a score is required (0 is one) */
	const char *bad = "{\"type\":\"survey\",\"company_id\":3,\"conversation_id\":41,\"data\":"
			  "{\"conversation_id\":41,\"kind\":\"csat\"}}";
	CHECK(!evt_parse(&e, bad, strlen(bad), NULL, 0));
}

TEST(names_and_unknown_types)
{
	for (int t = EVT_MESSAGE; t <= EVT_SURVEY; t++)
		CHECK(evt_type_of(evt_type_name((evt_type_t)t)) == (evt_type_t)t);
	CHECK(evt_type_of("filler") == EVT_UNKNOWN && evt_type_of(NULL) == EVT_UNKNOWN);
	/* a type this build does not know is passed on as it came */
	const char *other = "{\"type\":\"filler\",\"company_id\":999,\"data\":{\"n\":1}}";
	evt_t e;
	CHECK(evt_parse(&e, other, strlen(other), NULL, 0));
	CHECK(e.type == EVT_UNKNOWN && e.route.company == 999);
	CHECK_STR(e.type_name, "filler");
	char *d = evt_data_json(&e);
	CHECK_STR(d, "{\"n\":1}");
	free(d);
	evt_free(&e);
}

/* Optional numbers out of range read as absent (found by fuzz_event: 1e300 was cast). */
TEST(out_of_range_numbers_read_as_absent)
{
	const char *j = "{\"type\":\"message\",\"company_id\":2,\"conversation_id\":1e300,\"agent_id\":-1e300,"
			"\"data\":{\"message_id\":\"m\",\"conversation_id\":7,\"attempts\":1e300,\"by_agent\":1e20}}";
	evt_t e;
	char why[160] = "";
	CHECK(evt_parse(&e, j, strlen(j), why, sizeof(why)));
	CHECK(e.route.company == 2 && e.route.conversation == 0 && e.route.agent == 0);
	CHECK(e.message.attempts == 0 && e.message.by_agent == 0);
	evt_free(&e);
}

/* fuzz_event found it: an agent_id in a presence envelope became a route that writing the
 * event back dropped; presence is routed by company alone. */
TEST(presence_envelope_routes_by_company_only)
{
	const char *j = "{\"type\": \"presence\", \"agent_id\": 3, \"company_id\": 3, \"conversation_id\": 9, "
			"\"data\": {\"agent_id\": 3, \"company_id\": 3, \"status\": \"offline\", \"instance\": \"n2\", \"tabs\": 0}}";
	evt_t e, again;
	char why[160] = "";
	CHECK(evt_parse(&e, j, strlen(j), why, sizeof(why)));
	CHECK(e.route.company == 3 && e.route.conversation == 0 && e.route.agent == 0);
	size_t len = 0;
	char *w = evt_write(&e, &len);
	CHECK(w && evt_parse(&again, w, len, why, sizeof(why)));
	CHECK(again.route.company == 3 && again.route.agent == 0 && again.presence.agent_id == 3);
	evt_free(&again);
	free(w);
	evt_free(&e);
}

TEST(malformed_refused_with_reason)
{
	static const struct { const char *json, *why; } cases[] = {
		{"not json", "not JSON"},
		{"[1,2]", "not a JSON object"},
		{"{\"company_id\":1,\"data\":{}}", "missing type"},
		{"{\"type\":\"message\",\"company_id\":0,\"data\":{}}", "missing company_id"},
		{"{\"type\":\"message\",\"company_id\":1.5,\"data\":{}}", "missing company_id"},
		{"{\"type\":\"message\",\"company_id\":1,\"data\":[]}", "missing data object"},
		{"{\"type\":\"message\",\"company_id\":1,\"data\":{}}", "message: missing conversation_id"},
		{"{\"type\":\"hint\",\"company_id\":1,\"data\":{\"message_ids\":[],\"hint_id\":1,\"conversation_id\":1}}",
		 "hint: missing message_ids"},
		{"{\"type\":\"hint\",\"company_id\":1,\"data\":{\"message_ids\":[3],\"hint_id\":1,\"conversation_id\":1}}",
		 "hint: message_ids holds a non-string"},
		{"{\"type\":\"typing\",\"company_id\":1,\"data\":{\"conversation_id\":1,\"agent_id\":2,\"state\":\"maybe\"}}",
		 "typing: state is not start or stop"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{}}", "presence: missing instance"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{\"company_id\":2,\"instance\":\"x\",\"agent_id\":1,\"tabs\":1}}",
		 "presence: company_id missing or not the envelope's"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{\"company_id\":1,\"instance\":\"x\",\"agent_id\":-1,\"tabs\":1}}",
		 "presence: missing agent_id or tabs"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{\"company_id\":1,\"instance\":\"x\",\"heartbeat\":true,"
		 "\"agents\":[{\"agent_id\":1}]}}",
		 "presence: heartbeat agent without agent_id or tabs"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{\"company_id\":1,\"instance\":\"x\",\"agent_id\":1,\"tabs\":0,"
		 "\"expired\":true}}",
		 "presence: expiry without last_seen"},
		{"{\"type\":\"conversation\",\"company_id\":1,\"data\":{\"conversation_id\":1}}",
		 "conversation: missing conversation_id or status"},
		{"{\"type\":\"reset\",\"company_id\":1,\"data\":{}}", "reset: missing reason"},
		{"{\"type\":\"error\",\"company_id\":1,\"data\":{\"op\":\"reply\"}}", "error: missing error"},
		/* found by fuzz_event: numbers past what a double holds exactly are refused, never cast */
		{"{\"type\":\"message\",\"company_id\":4444444444444444444444444444444444444442,\"data\":{}}",
		 "missing company_id"},
		{"{\"type\":\"hint\",\"company_id\":1,\"data\":{\"message_ids\":[\"a\"],\"hint_id\":1e300,\"conversation_id\":1}}",
		 "hint: missing hint_id or conversation_id"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{\"company_id\":1,\"instance\":\"x\",\"agent_id\":1,\"tabs\":1,"
		 "\"expired\":true,\"last_seen\":-1e300}}",
		 "presence: expiry without last_seen"},
		{"{\"type\":\"presence\",\"company_id\":1,\"data\":{\"company_id\":1,\"instance\":\"x\",\"agent_id\":1,\"tabs\":4294967296}}",
		 "presence: missing agent_id or tabs"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		evt_t e;
		char why[160] = "";
		CHECK(!evt_parse(&e, cases[i].json, strlen(cases[i].json), why, sizeof(why)));
		CHECK_STR(why, cases[i].why);
		CHECK(e.root == NULL && e.owned[0] == NULL);
	}
}

int main(void)
{
	RUN(message_round_trips);
	RUN(hint_round_trips);
	RUN(typing_round_trips);
	RUN(presence_round_trips);
	RUN(assignment_conversation_status_round_trip);
	RUN(reset_and_error_round_trip);
	RUN(survey_round_trips);
	RUN(names_and_unknown_types);
	RUN(malformed_refused_with_reason);
	RUN(out_of_range_numbers_read_as_absent);
	RUN(presence_envelope_routes_by_company_only);
	return unit_done();
}
