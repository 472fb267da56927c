"""The `coordinator` command and its sub-commands, the demo, and workspace scaffolding with its
template packs. The outermost layer of the package: it may assemble everything else
(`build_defs`, resources), and nothing in the core imports it."""
