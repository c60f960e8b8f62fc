// The bytes of an HTTP/1.x response head and body, written by hand: one
// contiguous buffer the session sends with a single (usually synchronous)
// write, instead of Beast's message + serializer per response. Produces what
// Beast's serializer produced for our responses (tested against it).
#pragma once

#include <string>

#include "http_types.h"

namespace esdb_gateway {

// Appends to `out` the status line, "Server: esdb", Content-Type (when
// non-empty), `r.headers` (a later header replaces an earlier one of the
// same name, case-insensitively), Connection as `keep_alive` and `version`
// (10 or 11) require, Content-Length of `r.body`, the blank line, and the
// body unless `head` (a response to HEAD).
void AppendResponseWire(const Response& r, unsigned version, bool keep_alive, bool head, std::string* out);

}  // namespace esdb_gateway
