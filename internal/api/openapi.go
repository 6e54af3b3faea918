package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's contract. A test holds it and the routes to each other.
//
//go:embed openapi.yaml
var openAPI []byte

// serveOpenAPI needs no token: the contract is no secret, and tools fetch it unattended.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(openAPI)
}
