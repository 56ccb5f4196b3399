package token

import "strings"

// routeComponent is the path component before a token in a container
// token's route: /v2/wt/<token>/<repository>/...
const routeComponent = "wt"

// PathRedactor returns a replacer that puts, in any string made from the
// request path p (the repository name, an error message quoting it, the
// path itself), the short form in place of each token p may carry. A
// malformed path is logged and published as an event like any other, and
// a token in it is as much a credential as in a well-formed one, so the
// candidates are chosen loosely: each component after a "wt" component,
// wherever it is ("/v2//wt/<token>/..." is no token route, but carries
// one), and each component with a token's shape.
func PathRedactor(p string) *strings.Replacer {
	var pairs []string
	parts := strings.Split(p, "/")
	for i, c := range parts {
		afterWT := i > 0 && strings.EqualFold(parts[i-1], routeComponent)
		// A component no longer than the short form would only grow: it
		// is no token, and replacing it would garble the rest.
		if (afterWT && len(c) > shortLen) || wellFormed(c) {
			pairs = append(pairs, c, Short(c))
		}
	}
	return strings.NewReplacer(pairs...)
}
