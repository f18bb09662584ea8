// Package clients tests opstate serve through OpenFeature clients that
// the project did not write, from the npm registry: the Node server SDK
// with the OFREP provider, and the web SDK with the OFREP web provider
// making its requests as a browser page of another origin does.
//
// Its tests build the opstate command, start opstate serve on a database
// of their own, install the packages that js/package-lock.json pins with
// npm ci into a temporary directory, and run the scripts of js/ with
// Node (18 or later) against the server. Without node or npm they skip,
// or fail when CI=true; -short skips them.
package clients
