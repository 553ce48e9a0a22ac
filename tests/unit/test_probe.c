/* Unit tests of the readiness probe and URL parsers of snap_prepare. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "probe.h"

static struct snap_ctx *ctx;

static void setup(void)
{
	cr_assert_eq(snap_ctx_new(&ctx), 0);
}

static void teardown(void)
{
	snap_ctx_free(ctx);
}

TestSuite(probe, .init = setup, .fini = teardown);

static void expect_probe(const char *spec, enum probe_kind kind, const char *host, const char *port, const char *path)
{
	struct probe p;

	cr_assert_eq(probe_parse(ctx, spec, &p), 0, "'%s' was refused: %s", spec, snap_error(ctx));
	cr_expect_eq(p.kind, kind, "'%s': kind %d", spec, p.kind);
	cr_expect_str_eq(p.host, host, "'%s': host", spec);
	cr_expect_str_eq(p.port, port, "'%s': port", spec);
	cr_expect_str_eq(p.path, path, "'%s': path", spec);
}

static void expect_refused(const char *spec, const char *words)
{
	struct probe p;

	snap_clear_error(ctx);
	cr_expect_eq(probe_parse(ctx, spec, &p), -EINVAL, "'%s' was taken", spec);
	cr_expect(strstr(snap_error(ctx), words), "'%s': the error does not say '%s': %s", spec, words,
		  snap_error(ctx));
}

Test(probe, good)
{
	expect_probe("tcp:127.0.0.1:8080", PROBE_TCP, "127.0.0.1", "8080", "");
	expect_probe("tcp:localhost:1", PROBE_TCP, "localhost", "1", "");
	expect_probe("tcp:[::1]:65535", PROBE_TCP, "::1", "65535", "");
	expect_probe("http://127.0.0.1:8080/health?x=1", PROBE_HTTP, "127.0.0.1", "8080", "/health?x=1");
	expect_probe("http://localhost", PROBE_HTTP, "localhost", "80", "/");
	expect_probe("http://localhost/a/b", PROBE_HTTP, "localhost", "80", "/a/b");
	expect_probe("http://[::1]:9000/", PROBE_HTTP, "::1", "9000", "/");
	expect_probe("file:/run/app/ready", PROBE_FILE, "", "", "/run/app/ready");
}

Test(probe, bad)
{
	expect_refused("udp:127.0.0.1:53", "a probe is");
	expect_refused("https://example.com/", "a probe is");
	expect_refused("file:", "a probe is");
	expect_refused("tcp:127.0.0.1", "no port");
	expect_refused("tcp::80", "no host");
	expect_refused("tcp:127.0.0.1:0", "bad port");
	expect_refused("tcp:127.0.0.1:65536", "bad port");
	expect_refused("tcp:127.0.0.1:80x", "bad port");
	expect_refused("tcp:[::1:80", "unbalanced");
	expect_refused("tcp:[::1]80", "expected :PORT");
	expect_refused("http://host:/", "bad port");
	expect_refused("http://:80/", "no host");
	expect_refused("http://host/a b", "URL-encoded");
}

Test(probe, url_only_http)
{
	struct probe p;

	cr_expect_eq(probe_parse_url(ctx, "tcp:127.0.0.1:80", &p), -EINVAL);
	cr_expect_eq(probe_parse_url(ctx, "http://127.0.0.1:81/x", &p), 0);
	cr_expect_str_eq(p.port, "81");
}
