/*
 * Unit tests of passwd: yescrypt hashes that differ by salt and verify, wrong passwords
 * and every malformed hash refused, and the password policy.
 */
#include "passwd.h"
#include "unit.h"

TEST(hash_and_verify)
{
	char a[PASSWD_HASH_MAX], b[PASSWD_HASH_MAX], err[128];
	CHECK(passwd_hash("correct horse", a, sizeof(a), err, sizeof(err)));
	CHECK(passwd_hash("correct horse", b, sizeof(b), err, sizeof(err)));
	CHECK(strncmp(a, "$y$", 3) == 0);
	CHECK(strcmp(a, b) != 0); /* a fresh salt every time */
	CHECK(passwd_well_formed(a) && passwd_well_formed(b));
	CHECK(passwd_verify("correct horse", a));
	CHECK(passwd_verify("correct horse", b));
	CHECK(!passwd_verify("correct horsE", a));
	CHECK(!passwd_verify("correct horse ", a));
	CHECK(!passwd_verify("", a));
}

TEST(utf8_password)
{
	char h[PASSWD_HASH_MAX], err[128];
	CHECK(passwd_hash("atenção-çãõ", h, sizeof(h), err, sizeof(err)));
	CHECK(passwd_verify("atenção-çãõ", h));
	CHECK(!passwd_verify("atencao-cao", h));
}

TEST(malformed_hashes_never_match)
{
	char h[PASSWD_HASH_MAX], err[128];
	CHECK(passwd_hash("password1", h, sizeof(h), err, sizeof(err)));
	char cut[PASSWD_HASH_MAX];
	snprintf(cut, sizeof(cut), "%.*s", (int)strlen(h) - 5, h);
	CHECK(!passwd_verify("password1", cut)); /* truncated */
	CHECK(!passwd_verify("password1", NULL));
	CHECK(!passwd_verify("password1", ""));
	CHECK(!passwd_verify("password1", "*"));
	CHECK(!passwd_verify("password1", "!"));
	CHECK(!passwd_verify("password1", "$y$"));
	CHECK(!passwd_verify("password1", "password1"));
	/* a valid crypt(3) hash of another kind: not accepted as an account hash */
	CHECK(!passwd_verify("password1", "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq."
					  "O6vKCQiGOvYBk0F7XyPyr3/"));
	CHECK(!passwd_well_formed("$1$abc$def"));
	char bad[PASSWD_HASH_MAX];
	snprintf(bad, sizeof(bad), "%s", h);
	bad[10] = '!'; /* outside crypt's alphabet */
	CHECK(!passwd_verify("password1", bad));
	CHECK(!passwd_well_formed(bad));
	snprintf(bad, sizeof(bad), "%s$", h);
	CHECK(!passwd_well_formed(bad));
}

TEST(policy)
{
	char err[128];
	CHECK(passwd_acceptable("12345678", err, sizeof(err)));
	CHECK(!passwd_acceptable("1234567", err, sizeof(err)));
	CHECK(strstr(err, "shorter than 8") != NULL);
	CHECK(!passwd_acceptable("", err, sizeof(err)));
	CHECK(passwd_acceptable("çãõéíóúà", err, sizeof(err)));  /* 8 characters, 16 bytes */
	CHECK(!passwd_acceptable("çãõéíóú", err, sizeof(err))); /* 7 characters, 14 bytes */
	CHECK(!passwd_acceptable("12345678\n", err, sizeof(err)));
	char big[PASSWD_MAX_BYTES + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(!passwd_acceptable(big, err, sizeof(err)));
}

int main(void)
{
	RUN(hash_and_verify);
	RUN(utf8_password);
	RUN(malformed_hashes_never_match);
	RUN(policy);
	return unit_done();
}
