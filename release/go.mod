module github.com/d8da9184/opstate/release

go 1.26.0

require golang.org/x/mod v0.43.0
