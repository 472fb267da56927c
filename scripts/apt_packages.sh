# Sourced by the install_*.sh scripts: installs Debian packages as root with apt-get, once per
# machine, for the binaries a script needs. Not run on its own.
#
#   apt_packages_install NAME SKIP_VAR "BINARY …" PACKAGE …
#
# A no-op when every BINARY is executable. Otherwise: SKIP_VAR=skip leaves the packages out
# (exit 0 with a note); no apt-get or no root says what to run and exits 1, so a make target
# stops with a clear message; else apt-get installs them (an `apt-get update` only when the first
# try fails), serialised across concurrent callers, and every BINARY must exist afterwards.

apt_packages_missing() {
    local binary
    for binary in $1; do
        [ -x "$binary" ] || return 0
    done
    return 1
}

apt_packages_install() {
    local name=$1 skip_var=$2 binaries=$3
    shift 3
    local packages=("$@")
    say() { echo "$name: $*" >&2; }
    apt_packages_missing "$binaries" || return 0
    if [ "${!skip_var:-}" = skip ]; then
        say "$skip_var=skip: not installing ${packages[*]}"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "ERROR: $binaries missing and this machine has no apt-get; install ${packages[*]} (Debian's names)"
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "ERROR: $binaries missing and installing them needs root. Run:"
        say "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages[*]}"
        say "(or set $skip_var=skip)"
        exit 1
    fi
    local started
    started=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    # Two `make test` started at once must not run apt together (apt's own lock fails fast instead
    # of waiting).
    exec 8>"/tmp/coordinator-$name.lock"
    command -v flock >/dev/null 2>&1 && flock 8
    if apt_packages_missing "$binaries"; then
        say "installing ${packages[*]} with apt-get (once per machine)"
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1 || {
            apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
        } || {
            say "ERROR: apt-get install ${packages[*]} failed (no access to the Debian mirror?)"
            exit 1
        }
    fi
    local binary
    for binary in $binaries; do
        [ -x "$binary" ] || {
            say "ERROR: apt-get finished but $binary is missing"
            exit 1
        }
    done
    say "installed in $(($(date +%s) - started)) s"
}
