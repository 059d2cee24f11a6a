"""Claude Code command files (data, not code): `harness install-commands [DIR]` copies the
`*.md` files here into `DIR/.claude/commands/`."""
