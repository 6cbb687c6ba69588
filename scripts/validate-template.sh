#!/usr/bin/env bash
# validate-template.sh validates template.yaml with cfn-lint, which expands the
# SAM transform with AWS's own translator (aws-sam-translator) and checks the
# result against the CloudFormation resource schemas.
#
# Where cfn-lint comes from: it is a Python package, and PyPI is not among the
# registries this project's machines reach. The Go machine image ships it
# (pip, Python 3.11: cfn-lint with aws-sam-translator), so the script uses
# that. Tried and not usable: Debian has no cfn-lint package (apt-cache policy
# cfn-lint: none); the npm package named cfn-lint (1.9.7, a different,
# unmaintained validator) rejects valid SAM (it knows neither
# AWS::Serverless::LayerVersion nor Architectures or Layers).
#
# Exit status: 0 valid; 3 no validator here (the Go structural test in
# integration/template still runs); anything else: invalid.
# Usage: scripts/validate-template.sh [TEMPLATE]  (default: template.yaml)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tpl=${1:-template.yaml}

if command -v cfn-lint >/dev/null 2>&1 && cfn-lint --version >/dev/null 2>&1; then
	lint=(cfn-lint)
elif python3 -c 'import cfnlint' >/dev/null 2>&1; then
	lint=(python3 -m cfnlint)
else
	echo "validate-template: cfn-lint is not installed and cannot be installed from the registries reachable here (PyPI is not; apt has no cfn-lint; npm's cfn-lint 1.9.7 predates SAM layers)" >&2
	exit 3
fi

echo "validate-template: $("${lint[@]}" --version) on $tpl"
# No --ignore-checks: every finding, warnings included, fails the check.
"${lint[@]}" --format parseable -- "$tpl"
echo "validate-template: $tpl is valid"
