// Package drivermix holds tests of opstate beside a second SQLite library.
package drivermix
