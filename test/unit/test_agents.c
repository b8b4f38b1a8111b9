/*
 * Unit tests of agents_parse_args: what each of `atende agent add|passwd|disable|list`
 * requires and refuses before any database is touched (domains, role, login, limits).
 */
#include "agents.h"
#include "unit.h"

static bool parse(agents_opts_t *o, char *err, int argc, char **argv)
{
	return agents_parse_args(argc, argv, o, err, 256);
}


/* Parses a literal argv into o (err holds the reason); needs locals o, err, v, n. */
#define P(...) (v = (char *[]){__VA_ARGS__}, n = (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), parse(&o, err, n, v))

TEST(add_defaults_and_options)
{
	agents_opts_t o;
	char err[256];
	char **v;
	int n;
#define P(...) (v = (char *[]){__VA_ARGS__}, n = (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), parse(&o, err, n, v))
	CHECK(P("agent", "add", "-c", "f.conf", "--company", "1", "--agent", "11", "--login", "ana.s@x", "--name", "Ana"));
	CHECK(o.cmd == AGENTS_ADD && o.company == 1 && o.agent == 11 && o.max_open == 10);
	CHECK_STR(o.role, "agent");
	CHECK_STR(o.domains, "{}");
	CHECK_STR(o.login, "ana.s@x");
	CHECK(P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name", "Ana", "--role", "supervisor",
		"--domains", "suporte, financeiro,suporte", "--max-open", "3"));
	CHECK_STR(o.domains, "{suporte,financeiro}");
	CHECK_STR(o.role, "supervisor");
	CHECK(o.max_open == 3);

	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana"));
	CHECK(strstr(err, "--name") != NULL);
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name", "A", "--domains", "vendas"));
	CHECK(strstr(err, "\"vendas\"") != NULL);
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name", "A", "--domains", ","));
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name", "A", "--role", "boss"));
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name", "A", "--max-open", "0"));
	CHECK(!P("agent", "add", "--company", "1", "--agent", "x", "--login", "ana", "--name", "A"));
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana maria", "--name", "A"));
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name", "A", "--password", "x"));
	CHECK(strstr(err, "--password") != NULL); /* never on a command line */
	CHECK(!P("agent", "add", "--company", "1", "--agent", "11", "--login", "ana", "--name"));
}

TEST(passwd_disable_list)
{
	agents_opts_t o;
	char err[256];
	char **v;
	int n;
	CHECK(P("agent", "passwd", "-c", "f", "--login", "ana"));
	CHECK(o.cmd == AGENTS_PASSWD && o.login && !o.agent);
	CHECK(P("agent", "disable", "--agent", "7"));
	CHECK(o.cmd == AGENTS_DISABLE && o.agent == 7);
	CHECK(!P("agent", "disable"));
	CHECK(!P("agent", "disable", "--agent", "7", "--login", "ana"));
	CHECK(!P("agent", "passwd", "--login", "ana", "--max-open", "3"));
	CHECK(!P("agent", "passwd", "--login", "ana", "--company", "1"));
	CHECK(P("agent", "list", "--json"));
	CHECK(o.cmd == AGENTS_LIST && o.json && o.company == 0);
	CHECK(P("agent", "list", "--company", "2"));
	CHECK(o.company == 2 && !o.json);
	CHECK(!P("agent", "list", "--login", "ana"));
	CHECK(!P("agent", "remove", "--login", "ana"));
	CHECK(!P("agent"));
}

int main(void)
{
	RUN(add_defaults_and_options);
	RUN(passwd_disable_list);
	return unit_done();
}
