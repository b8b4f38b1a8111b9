/* Unit tests of the ingress's pure modules: gateway parsing (every sample payload and
 * the error table), the dedup window and the backlog bookkeeping. */
#include "backlog.h"
#include "config.h"
#include "dedup.h"
#include "gateway.h"
#include "unit.h"

#include <cJSON.h>
#include <openssl/hmac.h>
#include <stdlib.h>

static cfg_t C;
static const char *NOW = "2026-11-23T10:00:00.000Z";

static char *slurp(const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof(path), "test/fixtures/%s", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	*len = fread(b, 1, (size_t)n, f);
	b[*len] = 0;
	fclose(f);
	return b;
}

static cJSON *event_json(const gw_result_t *r, int i)
{
	return cJSON_Parse(r->events[i].value);
}

static void sign(const char *body, size_t len, const char *secret, char *out, size_t cap)
{
	unsigned char mac[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &n);
	int o = snprintf(out, cap, "sha256=");
	for (unsigned i = 0; i < n; i++)
		o += snprintf(out + o, cap - (size_t)o, "%02x", mac[i]);
}

TEST(evolution_text)
{
	size_t len;
	char *b = slurp("evolution-messages-upsert-text.json", &len);
	gw_result_t r;
	gw_parse_evolution(&C, NULL, b, len, NOW, &r);
	CHECK(r.status == 0 && r.n == 1 && !r.ignored);
	CHECK_STR(r.events[0].key, "evolution:demo:5511999990001");
	CHECK_STR(r.events[0].provider_id, "3EB0C767D26A1D2A5A3A");
	cJSON *e = event_json(&r, 0);
	CHECK_STR(cJSON_GetObjectItem(e, "text")->valuestring, "Oi, minha internet caiu desde ontem e preciso trabalhar hoje");
	CHECK_STR(cJSON_GetObjectItem(e, "sender_name")->valuestring, "Maria Souza");
	CHECK_STR(cJSON_GetObjectItem(e, "domain")->valuestring, "suporte");
	CHECK(cJSON_GetObjectItem(e, "company")->valueint == 1);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(e, "from_me")));
	CHECK_STR(cJSON_GetObjectItem(e, "sent_at")->valuestring, "2025-11-22T08:26:40.000Z");
	CHECK_STR(cJSON_GetObjectItem(e, "received_at")->valuestring, NOW);
	cJSON_Delete(e);
	gw_result_free(&r);
	free(b);
}

/* A file length no file has is left out of the event, never cast (fuzz_gw_evolution found
 * "fileLength": "4555555555555555555555555582213" cast to long long); a real one is kept. */
TEST(evolution_image_size_out_of_range_is_left_out)
{
	const char *lens[] = {"\"4555555555555555555555555582213\"", "1e300", "-5", "\"12.5\"", "\"nan\"", "\"48213\""};
	for (int i = 0; i < 6; i++) {
		char body[1024];
		int n = snprintf(body, sizeof(body),
				 "{\"event\": \"messages.upsert\", \"instance\": \"demo\", \"apikey\": \"demo-evolution-key\", \"data\": {\"key\": {\"remoteJid\": "
				 "\"5511999990001@s.whatsapp.net\", \"fromMe\": false, \"id\": \"IMG%d\"}, \"message\": "
				 "{\"imageMessage\": {\"url\": \"https://x/y.enc\", \"mimetype\": \"image/jpeg\", "
				 "\"fileLength\": %s}}, \"messageType\": \"imageMessage\", \"messageTimestamp\": 1763800100}}",
				 i, lens[i]);
		gw_result_t r;
		gw_parse_evolution(&C, NULL, body, (size_t)n, NOW, &r);
		CHECK(r.status == 0 && r.n == 1);
		cJSON *e = r.n == 1 ? event_json(&r, 0) : NULL;
		cJSON *size = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "media"), "size");
		if (i < 5)
			CHECK(e && !size);
		else
			CHECK(cJSON_IsNumber(size) && size->valuedouble == 48213);
		cJSON_Delete(e);
		gw_result_free(&r);
	}
}

TEST(evolution_extended_image_fromme_update)
{
	size_t len;
	gw_result_t r;
	char *b = slurp("evolution-messages-upsert-extended.json", &len);
	gw_parse_evolution(&C, "demo-evolution-key", b, len, NOW, &r);
	cJSON *e = event_json(&r, 0);
	CHECK(r.n == 1 && strstr(cJSON_GetObjectItem(e, "text")->valuestring, "quero cancelar meu plano") != NULL);
	cJSON_Delete(e), gw_result_free(&r), free(b);

	b = slurp("evolution-messages-upsert-image.json", &len);
	gw_parse_evolution(&C, NULL, b, len, NOW, &r);
	e = event_json(&r, 0);
	CHECK_STR(cJSON_GetObjectItem(e, "kind")->valuestring, "image");
	CHECK_STR(cJSON_GetObjectItem(e, "text")->valuestring, "olha a luz do roteador");
	cJSON *media = cJSON_GetObjectItem(e, "media");
	CHECK_STR(cJSON_GetObjectItem(media, "mimetype")->valuestring, "image/jpeg");
	CHECK(cJSON_GetObjectItem(media, "size")->valueint == 48213);
	cJSON_Delete(e), gw_result_free(&r), free(b);

	b = slurp("evolution-messages-upsert-fromme.json", &len);
	gw_parse_evolution(&C, NULL, b, len, NOW, &r);
	e = event_json(&r, 0);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(e, "from_me")));
	cJSON_Delete(e), gw_result_free(&r), free(b);

	b = slurp("evolution-messages-update.json", &len);
	gw_parse_evolution(&C, NULL, b, len, NOW, &r);
	CHECK(r.status == 0 && r.n == 1);
	CHECK_STR(r.events[0].type, "status");
	e = event_json(&r, 0);
	CHECK_STR(cJSON_GetObjectItem(e, "status")->valuestring, "read");
	CHECK_STR(cJSON_GetObjectItem(e, "gateway_status")->valuestring, "READ");
	CHECK(!cJSON_GetObjectItem(e, "error"));
	cJSON_Delete(e), gw_result_free(&r), free(b);

	/* Evolution's names in either case, the Cloud API's own; unknown ones are NULL */
	const char *names[][2] = {{"SERVER_ACK", "sent"}, {"server_ack", "sent"}, {"DELIVERY_ACK", "delivered"},
				  {"delivery_ack", "delivered"}, {"READ", "read"}, {"PLAYED", "read"},
				  {"played", "read"}, {"ERROR", "failed"}, {"error", "failed"}, {"sent", "sent"},
				  {"delivered", "delivered"}, {"read", "read"}, {"failed", "failed"},
				  {"PENDING", "pending"}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK_STR(gw_status_name(names[i][0]), names[i][1]);
	CHECK(gw_status_name("DELETED") == NULL && gw_status_name(NULL) == NULL);

	/* an ERROR says so; SERVER_ACK and "sent" are the same news (one dedup key) */
	const char *err = "{\"event\":\"messages.update\",\"instance\":\"demo\",\"apikey\":\"demo-evolution-key\","
			  "\"data\":{\"keyId\":\"X1\",\"remoteJid\":\"5511@s.whatsapp.net\",\"fromMe\":true,"
			  "\"status\":\"ERROR\"}}";
	gw_parse_evolution(&C, NULL, err, strlen(err), NOW, &r);
	CHECK(r.status == 0 && r.n == 1);
	e = event_json(&r, 0);
	CHECK_STR(cJSON_GetObjectItem(e, "status")->valuestring, "failed");
	CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "error")));
	cJSON_Delete(e), gw_result_free(&r);
	const char *ack = "{\"event\":\"messages.update\",\"instance\":\"demo\",\"apikey\":\"demo-evolution-key\","
			  "\"data\":{\"keyId\":\"X1\",\"remoteJid\":\"5511@s.whatsapp.net\",\"fromMe\":true,"
			  "\"status\":\"server_ack\"}}";
	gw_parse_evolution(&C, NULL, ack, strlen(ack), NOW, &r);
	CHECK(r.status == 0 && r.n == 1 && strstr(r.events[0].dedup_key, "\x1fsent"));
	gw_result_free(&r);
}

TEST(evolution_error_table)
{
	gw_result_t r;
	const char *cases[][3] = {
		{"not json", "400", "not valid JSON"},
		{"{\"event\":\"messages.upsert\",\"instance\":\"demo\"", "400", "truncated"},
		{"{\"instance\":\"demo\"}", "422", "missing field: event"},
		{"{\"event\":\"messages.upsert\",\"instance\":\"nope\",\"apikey\":\"x\"}", "404", "unknown instance"},
		{"{\"event\":\"messages.upsert\",\"instance\":\"demo\"}", "401", "missing apikey"},
		{"{\"event\":\"messages.upsert\",\"instance\":\"demo\",\"apikey\":\"wrong\"}", "401", "invalid apikey"},
		{"{\"event\":\"messages.upsert\",\"instance\":\"demo\",\"apikey\":\"demo-evolution-key\",\"data\":{\"key\":{\"remoteJid\":\"1@s\"},\"message\":{}}}", "422", "data.key.id"},
		{"{\"event\":\"messages.upsert\",\"instance\":\"demo\",\"apikey\":\"demo-evolution-key\",\"data\":{\"key\":{\"remoteJid\":\"1@s\",\"id\":\"A\"}}}", "422", "data.message"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_parse_evolution(&C, NULL, cases[i][0], strlen(cases[i][0]), NOW, &r);
		CHECK(r.status == atoi(cases[i][1]));
		CHECK(strstr(r.error, cases[i][2]) != NULL);
		if (r.status != atoi(cases[i][1]) || !strstr(r.error, cases[i][2]))
			printf("  case %zu: got %d %s\n", i, r.status, r.error);
		gw_result_free(&r);
	}
	const char *ignored = "{\"event\":\"chats.update\",\"instance\":\"demo\",\"apikey\":\"demo-evolution-key\"}";
	gw_parse_evolution(&C, NULL, ignored, strlen(ignored), NOW, &r);
	CHECK(r.status == 0 && r.ignored && r.n == 0);
	gw_result_free(&r);
}

TEST(cloud_signature_batch_status)
{
	size_t len;
	gw_result_t r;
	char sig[128];
	char *b = slurp("whatsapp-cloud-batch.json", &len);
	sign(b, len, "demo-app-secret", sig, sizeof(sig));
	gw_parse_cloud(&C, sig, b, len, NOW, &r);
	CHECK(r.status == 0 && r.n == 3);
	cJSON *e = event_json(&r, 0);
	CHECK_STR(cJSON_GetObjectItem(e, "sender_name")->valuestring, "Ana Lima");
	CHECK_STR(r.events[1].key, "cloud:106540352242922:5531977665544");
	cJSON_Delete(e);
	e = event_json(&r, 2);
	CHECK_STR(cJSON_GetObjectItem(e, "kind")->valuestring, "image");
	cJSON_Delete(e);
	gw_result_free(&r);

	sign(b, len, "wrong-secret", sig, sizeof(sig));
	gw_parse_cloud(&C, sig, b, len, NOW, &r);
	CHECK(r.status == 401);
	gw_result_free(&r);
	gw_parse_cloud(&C, NULL, b, len, NOW, &r);
	CHECK(r.status == 401);
	gw_result_free(&r);
	free(b);

	b = slurp("whatsapp-cloud-status.json", &len);
	sign(b, len, "demo-app-secret", sig, sizeof(sig));
	gw_parse_cloud(&C, sig, b, len, NOW, &r);
	CHECK(r.status == 0 && r.n == 1);
	CHECK_STR(r.events[0].type, "status");
	gw_result_free(&r);
	free(b);

	/* a failed status carries errors[0] as the reason */
	const char *failed = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":"
			     "\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"106540352242922\"},\"statuses\":"
			     "[{\"id\":\"wamid.F1\",\"status\":\"failed\",\"timestamp\":\"1763800400\",\"recipient_id\":"
			     "\"5521\",\"errors\":[{\"code\":131026,\"title\":\"Message undeliverable\"}]}]}}]}]}";
	sign(failed, strlen(failed), "demo-app-secret", sig, sizeof(sig));
	gw_parse_cloud(&C, sig, failed, strlen(failed), NOW, &r);
	CHECK(r.status == 0 && r.n == 1);
	e = event_json(&r, 0);
	CHECK_STR(cJSON_GetObjectItem(e, "status")->valuestring, "failed");
	CHECK_STR(cJSON_GetObjectItem(e, "error")->valuestring, "Message undeliverable (code 131026)");
	cJSON_Delete(e);
	gw_result_free(&r);

	CHECK(gw_cloud_verify(&C, "subscribe", "demo-verify-token", "123") == 200);
	CHECK(gw_cloud_verify(&C, "subscribe", "nope", "123") == 403);
}

TEST(neutral_api)
{
	gw_result_t r;
	const char *one = "{\"customer\":\"5511\",\"id\":\"m1\",\"text\":\"ola, quero um plano\"}";
	gw_parse_api(&C, "Bearer demo-api-key", one, strlen(one), NOW, &r);
	CHECK(r.status == 0 && r.n == 1);
	CHECK_STR(r.events[0].key, "api:site:5511");
	gw_result_free(&r);
	const char *arr = "[{\"customer\":\"1\",\"id\":\"a\",\"text\":\"x\"},{\"customer\":\"1\",\"text\":\"y\"}]";
	gw_parse_api(&C, "Bearer demo-api-key", arr, strlen(arr), NOW, &r);
	CHECK(r.status == 422 && strstr(r.error, "[1].id"));
	gw_result_free(&r);
	gw_parse_api(&C, "Bearer nope", one, strlen(one), NOW, &r);
	CHECK(r.status == 401);
	gw_result_free(&r);
}

TEST(dedup_window_evicts_oldest)
{
	dedup_t *d = dedup_new(3);
	dedup_add(d, "a"), dedup_add(d, "b"), dedup_add(d, "c");
	CHECK(dedup_contains(d, "a") && dedup_contains(d, "c"));
	dedup_add(d, "d");
	CHECK(!dedup_contains(d, "a") && dedup_contains(d, "b") && dedup_contains(d, "d"));
	CHECK(dedup_count(d) == 3);
	dedup_add(d, "d");
	CHECK(dedup_count(d) == 3);
	dedup_resize(d, 2);
	CHECK(!dedup_contains(d, "b") && dedup_contains(d, "c") && dedup_contains(d, "d"));
	dedup_free(d);
	d = dedup_new(0);
	dedup_add(d, "x");
	CHECK(!dedup_contains(d, "x"));
	dedup_free(d);
	d = dedup_new(1000);
	char k[32];
	for (int i = 0; i < 5000; i++)
		snprintf(k, sizeof(k), "k%d", i), dedup_add(d, k);
	CHECK(dedup_contains(d, "k4999") && dedup_contains(d, "k4000") && !dedup_contains(d, "k3999"));
	dedup_free(d);
}

TEST(backlog_counts_unconsumed_bytes)
{
	backlog_t *b = backlog_new();
	char which[64];
	for (int i = 0; i < 10; i++)
		backlog_produced(b, "t", 0, i, 100);
	backlog_produced(b, "t", 1, 0, 50);
	CHECK(backlog_max_bytes(b, which, sizeof(which)) == 1000);
	CHECK_STR(which, "t[0]");
	backlog_committed(b, "t", 0, 4); /* offsets 0..3 consumed */
	CHECK(backlog_max_bytes(b, NULL, 0) == 600);
	backlog_committed(b, "t", 0, 10);
	CHECK(backlog_max_bytes(b, which, sizeof(which)) == 50);
	CHECK_STR(which, "t[1]");
	CHECK(backlog_count(b) == 2);
	backlog_free(b);
}

int main(void)
{
	char err[4096];
	if (!cfg_load("deploy/atende.conf", &C, err, sizeof(err))) {
		printf("%s\n", err);
		return 1;
	}
	RUN(evolution_text);
	RUN(evolution_extended_image_fromme_update);
	RUN(evolution_image_size_out_of_range_is_left_out);
	RUN(evolution_error_table);
	RUN(cloud_signature_batch_status);
	RUN(neutral_api);
	RUN(dedup_window_evicts_oldest);
	RUN(backlog_counts_unconsumed_bytes);
	cfg_free(&C);
	return unit_done();
}
