#!/usr/bin/env bash
# Seed the fuzz corpora from the repository's own files (copies; the
# originals stay where they are). fuzz/corpus/ is git-ignored: run this
# once before the first `cargo +nightly fuzz run`, again to pick up new
# fixtures (existing corpus entries are kept).
#
#   fuzz/corpus/pipeline/  every .eml under fixtures/ (all subdirectories),
#                          the fuzzers' own findings (fixtures/fuzz/)
#                          included: they are fixed.
#   fuzz/corpus/config/    config.example.toml, src/default.toml and the
#                          clock configs under fixtures/clocks/
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p fuzz/corpus/pipeline fuzz/corpus/config
n=0
while IFS= read -r -d '' f; do
    # fixtures/corpus/x.eml -> corpus-x.eml: names stay unique across
    # subdirectories.
    rel=${f#fixtures/}
    cp -- "$f" "fuzz/corpus/pipeline/${rel//\//-}"
    n=$((n + 1))
done < <(find fixtures -type f -name '*.eml' -print0)
echo "pipeline: $n mail files from fixtures/"

m=0
for f in config.example.toml src/default.toml fixtures/clocks/*.toml; do
    [ -f "$f" ] || continue
    cp -- "$f" "fuzz/corpus/config/${f//\//-}"
    m=$((m + 1))
done
echo "config: $m TOML files"
