/*
 * floe token new: an API token for a namespace, made locally.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth.h"
#include "cli-internal.h"

/*
 * token new NAMESPACE: a fresh token and the config lines that make floed
 * accept it. Local only: floed keeps hashes, so it has nothing to ask.
 */
int cli__cmd_token_new(struct cli *cli, int argc, char **argv)
{
	/* Nothing is sent, so a FLOE_URL meant for other commands must not
	 * fail this one (an explicit --url is still checked). */
	if (!cli->url)
		cli->url = DEFAULT_URL;
	int npos, rc = cli__parse_opts(cli, NULL, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos == 0)
		return cli__usage_error(cli->cmd, "which namespace? give one, such as alice");
	if (npos > 1)
		return cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[1]);
	const char *ns = argv[0];
	if (!floe_auth_namespace_valid(ns))
		return cli__usage_error(cli->cmd,
					"'%s' is not a namespace: 1 to 63 characters of [a-z0-9-], "
					"starting with a letter or digit",
					ns);
	char token[64], hex[65];
	int r = floe_auth_token_new(token, hex);
	if (r < 0) {
		cli__errorf("cannot get random bytes for a token: %s", strerror(-r));
		return EXIT_FAIL;
	}
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "namespace", ns, "token", token, "sha256",
				      hex);
		char *text = json_dumps(o, JSON_COMPACT);
		printf("%s\n", text);
		explicit_bzero(text, strlen(text));
		free(text);
		json_decref(o); /* jansson keeps its own copy of the token: gone with it */
	} else {
		printf("token: %s   (shown once: store it now; floed keeps only its hash)\n"
		       "add to floed's config under auth.tokens:\n"
		       "    - namespace: %s\n"
		       "      sha256: %s\n",
		       token, ns, hex);
	}
	explicit_bzero(token, sizeof(token));
	return EXIT_OK;
}
