# Sourced by the GPU scripts (needs $root, the working tree): puts the package on PYTHONPATH as
# it installs (models/, runtime/, export/ inside magvit_onnx), as links in a temporary folder,
# without installing anything: the lent GPU machines have no package index.
package_links=$(mktemp -d)
trap 'rm -rf "$package_links"' EXIT
mkdir "$package_links/magvit_onnx"
for entry in "$root"/magvit_onnx/*; do ln -s "$entry" "$package_links/magvit_onnx/"; done
for part in models runtime export; do ln -s "$root/$part" "$package_links/magvit_onnx/$part"; done
