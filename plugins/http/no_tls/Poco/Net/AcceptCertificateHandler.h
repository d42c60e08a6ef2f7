// No-TLS stand-in for <Poco/Net/AcceptCertificateHandler.h>: see relay_no_tls.h.
#pragma once
#include "relay_no_tls.h"  // IWYU pragma: export
