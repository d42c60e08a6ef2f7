/*
 * telemetry-relay sink plugin ABI (C). This header is the whole contract between the host and a
 * sink plugin: nothing else crosses the shared-library boundary.
 *
 * Versioning:
 *   - RELAY_ABI_MAJOR changes only when an existing field changes meaning, type or position.
 *     The host refuses a plugin whose major differs from its own, naming both versions.
 *   - RELAY_ABI_MINOR grows when fields are appended to a struct that carries struct_size
 *     (relay_batch, relay_host, relay_sink_descriptor). Readers use a field only when struct_size
 *     covers it, so old plugins run on new hosts and vice versa.
 *   - relay_str, relay_kv, relay_event and relay_error travel in arrays or by value without a size:
 *     they are frozen for a major version. Changing them means a new major.
 *   - tests/unit/abi_pin_test.cpp pins a hash of this file: editing it without bumping a version
 *     (and updating the pin) fails the build's tests.
 *
 * History:
 *   1.0  the first release.
 *   1.1  relay_batch gains batch_id (stable across retries and replays) and feedback (a plugin
 *        may return a Retry-After hint, or say it discarded the batch by configuration).
 *   1.2  RELAY_FEEDBACK_TOO_LARGE: a plugin may say the receiver refused a batch as too large
 *        (e.g. HTTP 413); the host then splits it. Split batches carry derived ids "<id>.1",
 *        "<id>.2" (recursively), still stable across retries and replays.
 *   1.3  relay_sink_descriptor gains config_keys: a plugin declares every configuration key it
 *        reads (type, default, range or choices, secret or not, one line of help). The host
 *        validates the sink's configuration against them, shows them in --check (secrets
 *        redacted) and passes create() every declared key with its effective value.
 *   1.4  relay_batch gains function_arn (the function's ARN as the Extensions API gave it), and
 *        relay_deliver_feedback gains rejected_events (with RELAY_OK: how many of the batch's
 *        events the receiver refused, e.g. an OTLP partial success; the host counts them dropped).
 *
 * Ownership: every pointer the host passes is host-owned and valid only for the duration of the
 * call; a plugin copies what it keeps. Nothing is allocated on one side and freed on the other.
 *
 * Errors: callbacks return relay_status. On anything but RELAY_OK a plugin may write a
 * NUL-terminated message into the host-owned relay_error buffer. C++ exceptions must never
 * cross this boundary (the C++ layer in sink.hpp catches them).
 */
#ifndef TELEMETRY_RELAY_SINK_ABI_H
#define TELEMETRY_RELAY_SINK_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RELAY_ABI_MAJOR 1u
#define RELAY_ABI_MINOR 4u

/* The one exported symbol of a plugin: relay_sink_entry. */
#define RELAY_SINK_ENTRY_SYMBOL "relay_sink_entry"

typedef enum relay_status {
  RELAY_OK = 0,    /* delivered (or discarded by configuration: see RELAY_FEEDBACK_DISCARDED) */
  RELAY_RETRY = 1, /* transient failure: the host keeps the batch and tries again later */
  RELAY_DROP = 2,  /* permanent failure for this batch: the host drops it and counts it */
  RELAY_FATAL = 3, /* the sink is unusable: the host disables it */
  /* Any other value is treated as RELAY_DROP. */
  RELAY_STATUS_RESERVED_MAX_ = 0x7fffffff
} relay_status;

typedef enum relay_log_level {
  RELAY_LOG_ERROR = 0,
  RELAY_LOG_WARN = 1,
  RELAY_LOG_INFO = 2,
  RELAY_LOG_DEBUG = 3,
  /* Any other value is logged at debug. */
  RELAY_LOG_RESERVED_MAX_ = 0x7fffffff
} relay_log_level;

/* A byte range; not NUL-terminated. */
typedef struct relay_str {
  const char* data;
  size_t size;
} relay_str;

/* One configuration entry for a sink, e.g. {"post_uri", "https://..."}. */
typedef struct relay_kv {
  relay_str key;
  relay_str value;
} relay_kv;

/* Host-owned error text buffer, zeroed by the host before each call. A plugin writes at most
 * capacity bytes, NUL included. */
typedef struct relay_error {
  char* message;
  size_t capacity;
} relay_error;

/* One telemetry event, as received from the Lambda Telemetry API. */
typedef struct relay_event {
  relay_str json;   /* the whole event object, byte for byte as received */
  relay_str type;   /* value of "type", without quotes (escapes left as received) */
  relay_str time;   /* value of "time", without quotes */
  relay_str record; /* raw JSON text of "record": a JSON string (with quotes) or an object */
} relay_event;

/* Since ABI 1.1. What a plugin may tell the host about one deliver() besides its status.
 * Host-owned; the host sets struct_size and zeroes the rest before each call. A plugin writes a
 * field only when struct_size covers it. */
typedef struct relay_deliver_feedback {
  uint32_t struct_size; /* sizeof(relay_deliver_feedback) as the host built it */
  uint32_t flags;       /* RELAY_FEEDBACK_* bits */
  /* With RELAY_RETRY: do not retry before this many milliseconds (e.g. HTTP Retry-After);
   * 0 means no hint. The host caps it and never waits past its own deadlines. */
  uint64_t retry_after_ms;
  /* Since ABI 1.4. With RELAY_OK: how many of the batch's events the receiver refused while
   * taking the rest (e.g. an OTLP partial success). The host counts that many (at most the
   * batch's count) as dropped by the sink and the rest as delivered. */
  uint64_t rejected_events;
} relay_deliver_feedback;

/* With RELAY_OK: the batch was deliberately discarded by configuration (e.g. no endpoint set),
 * not delivered. The host counts its events as discarded. */
#define RELAY_FEEDBACK_DISCARDED 1u
/* Since ABI 1.2. With RELAY_DROP: the receiver refused the batch as too large (e.g. HTTP 413).
 * The host delivers a batch of several events again as two halves, and drops a single event
 * (counted). A 1.1 host drops the whole batch. */
#define RELAY_FEEDBACK_TOO_LARGE 2u

/* Since ABI 1.3. How the host validates a declared key's value. */
typedef enum relay_key_type {
  RELAY_KEY_STRING = 0,  /* any text */
  RELAY_KEY_INTEGER = 1, /* a whole decimal number in [min, max] */
  RELAY_KEY_BOOLEAN = 2, /* true/false, on/off, yes/no or 1/0, any case; passed as "true"/"false" */
  RELAY_KEY_CHOICE = 3,  /* one of choices, any case; passed as spelled in choices */
  RELAY_KEY_URI = 4,     /* an absolute URI with a host whose scheme is one of choices */
  RELAY_KEY_RESERVED_MAX_ = 0x7fffffff
} relay_key_type;

/* relay_config_key.flags */
#define RELAY_KEY_SECRET 1u /* never shown: logs, --check and errors print <redacted> */
#define RELAY_KEY_PREFIX 2u /* name is a prefix: every key that starts with it (e.g. "header_") */

/* Since ABI 1.3. One configuration key a sink reads. Keys arrive lower-case without the
 * RELAY_<SINK>_ prefix of their environment variable (RELAY_HTTP_CA_FILE is "ca_file"). */
typedef struct relay_config_key {
  const char* name;          /* e.g. "connect_timeout_ms" */
  uint32_t type;             /* relay_key_type */
  uint32_t flags;            /* RELAY_KEY_* bits */
  const char* default_value; /* used when unset or invalid; "" or NULL: unset */
  int64_t min;               /* RELAY_KEY_INTEGER: inclusive bounds */
  int64_t max;
  const char* choices; /* RELAY_KEY_CHOICE values, RELAY_KEY_URI schemes: "a|b|c"; else NULL */
  const char* help;    /* one line for --check and the README */
} relay_config_key;

/* A batch to deliver. */
typedef struct relay_batch {
  uint32_t struct_size;      /* sizeof(relay_batch) as the host built it */
  const relay_event* events; /* count events, in arrival order */
  size_t count;
  relay_str json; /* a JSON array of every event's json, in order: "[e1,e2,...]" */
  /* Since ABI 1.1 (present when struct_size covers them): */
  /* The delivery's id: the same on every retry and replay of these exact bytes, also from the
   * spool after a restart, so a receiver can deduplicate. Opaque printable ASCII, at most 128
   * bytes (32 lowercase hex digits, plus ".1"/".2" suffixes for the halves of a split batch). */
  relay_str batch_id;
  relay_deliver_feedback* feedback; /* host-owned; may be NULL */
  /* Since ABI 1.4. The function's ARN from the INVOKE events the host received
   * (invokedFunctionArn, qualified by version or alias when invoked so); empty until the first
   * INVOKE, and always on Lambda Managed Instances, whose extensions get no INVOKE. */
  relay_str function_arn;
} relay_batch;

/* Services the host offers to a plugin. [thread-safe] unless noted. */
typedef struct relay_host {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t struct_size;
  const char* host_version; /* e.g. "0.1.0" */
  void* host_ctx;           /* pass back to the callbacks below */
  /* Writes one log line attributed to the sink. [thread-safe] */
  void (*log)(void* host_ctx, relay_log_level level, const char* message);
} relay_host;

/* What a plugin describes itself with. All fields are read-only for the host. */
typedef struct relay_sink_descriptor {
  uint32_t abi_major;   /* RELAY_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor;   /* RELAY_ABI_MINOR the plugin was built with */
  uint32_t struct_size; /* sizeof(relay_sink_descriptor) at plugin build time */
  /* The sink's name, e.g. "http": what RELAY_SINKS lists and RELAY_<NAME>_* configures, and what
   * log lines and the spool folder are named by. It must equal <name> in the file name
   * librelay-sink-<name>.so: the host refuses a mismatch, naming both. */
  const char* name;
  const char* version; /* plugin version, e.g. "1.0.0" */

  /* Creates one sink instance from its configuration. [main-thread] Called after the entry
   * function and before any other call for the instance. host outlives the instance. On failure
   * return any status other than RELAY_OK, leave *out_instance NULL (the host ignores it) and
   * fill err; the sink is then not enabled (and destroy is not called). */
  relay_status (*create)(const relay_host* host, const relay_kv* config, size_t config_count,
                         void** out_instance, relay_error* err);

  /* Delivers one batch. [outlet-thread] One host thread per instance, one call at a time: never
   * concurrently for one instance; different instances may be called in parallel. May block, but
   * must return by deadline_unix_ms (Unix epoch milliseconds; always a real time, never 0). At
   * SHUTDOWN the deadline is the end of the delivery phase; a call still running then is
   * abandoned: the instance gets no further call (no flush, no destroy). */
  relay_status (*deliver)(void* instance, const relay_batch* batch, uint64_t deadline_unix_ms,
                          relay_error* err);

  /* Hands on anything the plugin buffers itself. [shutdown-thread] Called once per instance, at
   * SHUTDOWN only, after its last deliver returned and the host spooled what it still held; never
   * during normal operation, never concurrently with deliver. Instances are flushed in parallel,
   * each on its own host thread. Must return by deadline_unix_ms. RELAY_OK: nothing is left
   * buffered. Anything else: what the plugin still buffers is lost (its events were counted as
   * delivered when deliver answered RELAY_OK); the host logs the status with err's message and
   * reports "flush_failed": true for the sink in its summary. May be NULL when the plugin keeps
   * nothing (counts as RELAY_OK). Not called for an instance disabled by RELAY_FATAL, one still in
   * deliver at the end of the delivery phase, or when the shutdown deadline has already passed. */
  relay_status (*flush)(void* instance, uint64_t deadline_unix_ms, relay_error* err);

  /* Destroys an instance. [main-thread] Called at most once, at SHUTDOWN, after flush returned
   * (or after the last deliver when flush is not called); no call for the instance follows. The
   * library stays loaded until the process exits. NOT called when a deliver or flush of the
   * instance is still running at its deadline (the process exits without waiting for it), nor
   * when the process crashes, is killed (SIGKILL at Lambda's deadline, an out-of-memory kill) or
   * exits on an init failure or a failed Extensions API call. So never rely on destroy to make
   * data durable: answer deliver RELAY_OK only once the batch is safe. */
  void (*destroy)(void* instance);

  /* Since ABI 1.3 (present when struct_size covers them). The keys the plugin reads; NULL/0
   * when it declares none (the host then passes its configuration unchecked, as 1.2 did). With
   * keys, the host refuses what is undeclared, replaces an invalid value by its default (one
   * error line naming key, value and default; RELAY_STRICT makes it an init error) and passes
   * create() every declared key that has a value. An empty value means unset. The array stays
   * valid while loaded. */
  const relay_config_key* config_keys;
  size_t config_key_count;
} relay_sink_descriptor;

/* The entry point: returns the plugin's descriptor, or NULL to refuse this host (for instance an
 * unsupported host ABI major). [main-thread] Called before any create, possibly more than once
 * (the host reads the declared keys, then creates): return the same descriptor each time. The
 * pointer must stay valid while the library is loaded. */
typedef const relay_sink_descriptor* (*relay_sink_entry_fn)(uint32_t host_abi_major,
                                                            uint32_t host_abi_minor);
const relay_sink_descriptor* relay_sink_entry(uint32_t host_abi_major, uint32_t host_abi_minor);

#ifdef __cplusplus
}
#endif

#endif /* TELEMETRY_RELAY_SINK_ABI_H */
