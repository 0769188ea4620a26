#!/usr/bin/env bash
# Writes the env.sh files that `make` leaves in build/ (the Makefile's env rule calls this):
#
#   write_env.sh variant OUT VARIANT ROOT TREE VENV
#       OUT (build/<variant>/env.sh): CAFFE_VARIANT, CAFFE_ROOT, PATH and PYTHONPATH for the
#       Caffe built in TREE, plus OMP_WAIT_POLICY.
#   write_env.sh current OUT VARIANT VARIANT_ENV
#       OUT (build/env.sh): sources VARIANT_ENV, the env.sh of the variant built last.
#
# Files are replaced whole (written aside, then renamed), so a shell never sources half of one.
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The paths go inside double quotes in the files written; refuse what would break out of them.
check_path() {
    case $1 in
        *[\"\$\`\\]* | *$'\n'*) echo "write_env.sh: unsupported character in path: $1" >&2; exit 2 ;;
        /*) ;;
        *) echo "write_env.sh: not an absolute path: $1" >&2; exit 2 ;;
    esac
}

write() {  # stdin -> $1
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat > "$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$1"
}

case ${1:-} in
    variant)
        [ $# -eq 6 ] || usage
        out=$2 variant=$3 root=$4 tree=$5 venv=$6
        for p in "$root" "$tree" "$venv"; do check_path "$p"; done
        mkdir -p "$(dirname "$out")"
        write "$out" <<EOF
# Source this file to use the Caffe built by this project: the $variant variant, in $tree.
# Written by make (scripts/write_env.sh); build/env.sh sources the variant built last.
export CAFFE_VARIANT=$variant
export CAFFE_ROOT="$tree"
export PATH="$tree/.build_release/tools:$venv/bin:\$PATH"
export PYTHONPATH="$tree/python:$root/python\${PYTHONPATH:+:\$PYTHONPATH}"
# OpenMP threads sleep between parallel regions: spinning ones starve OpenBLAS on few cores.
export OMP_WAIT_POLICY="\${OMP_WAIT_POLICY:-PASSIVE}"
EOF
        ;;
    current)
        [ $# -eq 4 ] || usage
        out=$2 variant=$3 env=$4
        check_path "$env"
        [ -f "$env" ] || { echo "write_env.sh: no $env (build the $variant variant first)" >&2; exit 1; }
        mkdir -p "$(dirname "$out")"
        write "$out" <<EOF
# Source this file to use the Caffe built last by this project: the $variant variant.
# make rewrites it after each build (scripts/write_env.sh); to use another variant, source its
# own build/<variant>/env.sh. \$CAFFE_VARIANT says which one is in use.
. "$env"
EOF
        ;;
    *) usage ;;
esac
