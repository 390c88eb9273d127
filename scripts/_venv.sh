# shellcheck shell=bash
# Sourced by scripts/test and scripts/serve: make sure .venv exists and holds the project.
#
# The install is skipped when .venv/.install-stamp matches the hash of pyproject.toml and the
# interpreter version, so a second run starts in a second instead of a minute.

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

quiet_pip() {
    # pip's own output is the progress report of a first install (a few minutes), less the
    # "Requirement already satisfied" lines of an update. Some machines' pip configuration
    # names local package folders that do not exist; pip warns once per package about each,
    # which buries real messages, so those lines are dropped too.
    local rc skip
    skip="^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory"
    skip="$skip|^Requirement already satisfied"
    .venv/bin/python -m pip "$@" > >(grep --line-buffered -v -E "$skip") 2>&1
    rc=$?
    wait  # for the filter to print its last lines
    return "$rc"
}

ensure_venv() {
    local python stamp want
    if [ ! -x .venv/bin/python ]; then
        python=$(find_python) || return 1
        echo "creating .venv with $python"
        "$python" -m venv .venv || {
            echo "error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    stamp=.venv/.install-stamp
    want="$( (cat pyproject.toml; .venv/bin/python -VV) | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/drift-monitor ]; then
        echo ".venv is up to date"
        return 0
    fi
    echo "installing the project into .venv (pip install -e '.[dev,report]')"
    echo "the first install downloads numpy, scipy, SQLAlchemy, ... and takes about 3 minutes;"
    echo "pip's progress follows, later runs skip this step"
    quiet_pip install --progress-bar off --disable-pip-version-check -e '.[dev,report]' ||
        return 1
    echo "installed; .venv is ready"
    echo "$want" >"$stamp"
}
