// Package dialplans loads the admin-edited YAML files that say who callpark
// serves and how their phones dial.
//
// A dialplan directory holds, anywhere in its tree, *.yaml and *.yml files
// (names starting with a dot are skipped, so editor swap files are ignored).
// Each file holds one document, told apart by its kind key:
//
//   - kind: rule — a named set of dial codes (park, release, slot release)
//     and parking options, shared by any number of customers;
//   - kind: customer — a tenant: its SIP domain, the rule it uses, its
//     features, accounts (extensions), DIDs, trunks and parking slots.
//
// Parse checks one file on its own; Load reads a whole tree, resolves rule
// references and checks what spans files (unique names, domains and DIDs,
// slot codes that would shadow an extension). Every problem is reported as a
// Problem with the file and the 1-based line of the offending YAML node, and
// all problems of a load come back together in an *Error.
//
// Customer.Route turns a dialed string into a Route (park, retrieve, slot,
// extension) using the customer's rule codes; the caller then checks
// Features and Account permissions.
//
// A Store keeps the current Set behind an atomic pointer and swaps in a new
// one on Reload or when Watch sees files change. Reloads are per file: an
// invalid file is refused and its previous good version stays in force while
// other valid files are applied.
package dialplans
