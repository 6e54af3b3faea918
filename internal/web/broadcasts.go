package web

import "net/http"

// broadcastRoutes: the pages of this area are being written.
func (c *Console) broadcastRoutes(mux *http.ServeMux) {}
