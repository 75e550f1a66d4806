#!/usr/bin/env bash
# Refresh the JavaScript the built book loads from its own _static folder, so that the HTML
# works with no network: MathJax 3 (math) and the ipywidgets HTML manager (embedded widgets).
# The files are committed under book/_static/vendor/; run this only to upgrade them.
#
# Usage: bash scripts/vendor_web_assets.sh      (needs npm and access to the npm registry)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor="$repo_root/book/_static/vendor"
mathjax_version=3.2.2
html_manager_version=1.0.15   # @jupyter-widgets/html-manager 1.x renders ipywidgets 8 state

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "mathjax@$mathjax_version" "@jupyter-widgets/html-manager@$html_manager_version" >/dev/null
mkdir mathjax html-manager
tar xzf "mathjax-$mathjax_version.tgz" -C mathjax
tar xzf "jupyter-widgets-html-manager-$html_manager_version.tgz" -C html-manager

rm -rf "$vendor"
mkdir -p "$vendor/mathjax/output/chtml/fonts" "$vendor/mathjax/input/tex" "$vendor/html-manager"
es5=mathjax/package/es5
# tex-chtml.js finds its fonts and the TeX extensions it autoloads relative to its own path.
cp "$es5/tex-chtml.js" "$vendor/mathjax/"
cp -r "$es5/output/chtml/fonts/woff-v2" "$vendor/mathjax/output/chtml/fonts/"
cp -r "$es5/input/tex/extensions" "$vendor/mathjax/input/tex/"
cp mathjax/package/LICENSE "$vendor/mathjax/LICENSE"
# embed.js is the stand-alone manager: the built-in controls and Output widgets, no require.js.
dist=html-manager/package/dist
cp "$dist/embed.js" "$dist/embed.js.LICENSE.txt" "$vendor/html-manager/"
# The icon fonts embed.js's stylesheet asks for (woff2 first, woff as the fallback).
cp "$dist"/*.woff2 "$dist"/*.woff "$vendor/html-manager/"
cat > "$vendor/VERSIONS.txt" <<TXT
mathjax $mathjax_version (npm; Apache-2.0, see mathjax/LICENSE): es5/tex-chtml.js, woff-v2 fonts, TeX extensions
@jupyter-widgets/html-manager $html_manager_version (npm; BSD-3-Clause, see html-manager/embed.js.LICENSE.txt): dist/embed.js and its icon fonts
Refresh with: bash scripts/vendor_web_assets.sh
TXT
du -sh "$vendor"
