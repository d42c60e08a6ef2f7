#include "protobuf_encoder.h"

#include <bit>
#include <cassert>
#include <cstring>
#include <vector>

namespace relay::otlp {
namespace {

// fixed32, fixed64, double and the packed arrays are copied as they sit in memory.
static_assert(std::endian::native == std::endian::little,
              "the protobuf wire format is little-endian");

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

constexpr size_t varint_size(uint64_t v) {
  return (static_cast<size_t>(std::bit_width(v | 1)) + 6) / 7;
}
constexpr size_t tag_size(uint32_t field) { return varint_size(uint64_t{field} << 3); }

// Two passes over the same code (the templates below): the Sizer measures every nested message
// and records its length in the order the Writer will need it; the Writer then writes straight
// into the output, sized exactly once. No copies, no per-field allocation.
class Sizer {
 public:
  explicit Sizer(std::vector<size_t>& sizes) : sizes_(sizes) {}
  size_t size() const { return size_; }

  void varint(uint32_t field, uint64_t v) { size_ += tag_size(field) + varint_size(v); }
  void fixed32(uint32_t field, uint32_t) { size_ += tag_size(field) + 4; }
  void fixed64(uint32_t field, uint64_t) { size_ += tag_size(field) + 8; }
  void bytes(uint32_t field, const void*, size_t n) {
    size_ += tag_size(field) + varint_size(n) + n;
  }
  template <class Body>
  void message(uint32_t field, Body&& body) {
    const size_t slot = sizes_.size();
    sizes_.push_back(0);
    const size_t start = size_;
    body();
    const size_t length = size_ - start;
    sizes_[slot] = length;
    size_ += tag_size(field) + varint_size(length);
  }

 private:
  std::vector<size_t>& sizes_;
  size_t size_ = 0;
};

class Writer {
 public:
  Writer(char* out, const size_t* sizes) : p_(out), sizes_(sizes) {}
  const char* position() const { return p_; }

  void varint(uint32_t field, uint64_t v) {
    tag(field, kVarint);
    raw_varint(v);
  }
  void fixed32(uint32_t field, uint32_t v) {
    tag(field, kFixed32);
    raw(&v, sizeof v);
  }
  void fixed64(uint32_t field, uint64_t v) {
    tag(field, kFixed64);
    raw(&v, sizeof v);
  }
  void bytes(uint32_t field, const void* data, size_t n) {
    tag(field, kLen);
    raw_varint(n);
    raw(data, n);
  }
  template <class Body>
  void message(uint32_t field, Body&& body) {
    tag(field, kLen);
    raw_varint(*sizes_++);
    body();
  }

 private:
  void tag(uint32_t field, WireType type) { raw_varint(uint64_t{field} << 3 | type); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<char>(v);
  }
  void raw(const void* data, size_t n) {
    if (n != 0) std::memcpy(p_, data, n);  // an empty view's data() may be null
    p_ += n;
  }

  char* p_;
  const size_t* sizes_;
};

// proto3 implicit-presence fields: the default value is not written.
template <class W>
void string_field(W& w, uint32_t field, std::string_view s) {
  if (!s.empty()) w.bytes(field, s.data(), s.size());
}
template <class W>
void fixed64_field(W& w, uint32_t field, uint64_t v) {
  if (v != 0) w.fixed64(field, v);
}
template <class W>
void fixed32_field(W& w, uint32_t field, uint32_t v) {
  if (v != 0) w.fixed32(field, v);
}
template <class W>
void double_field(W& w, uint32_t field, double v) {  // presence fields: always written
  w.fixed64(field, std::bit_cast<uint64_t>(v));
}
template <class W>
void enum_field(W& w, uint32_t field, int32_t v) {
  // An enum is an int32 varint: a negative value is sign-extended to 10 bytes.
  if (v != 0) w.varint(field, static_cast<uint64_t>(int64_t{v}));
}
template <class W, size_t N>
void id_field(W& w, uint32_t field, const std::array<uint8_t, N>& id) {
  if (is_set(id)) w.bytes(field, id.data(), N);
}
template <class W, class T>
void packed_field(W& w, uint32_t field, const std::vector<T>& values) {  // fixed64 or double
  if (!values.empty()) w.bytes(field, values.data(), values.size() * sizeof(T));
}

template <class W>
void key_values(W& w, uint32_t field, const Attributes& attributes);

// common.v1.AnyValue: a oneof, so a set member is written even when it is zero or empty.
template <class W>
void any_value(W& w, const AnyValue& v) {
  switch (v.kind) {
    case AnyValue::Kind::kEmpty:
      break;
    case AnyValue::Kind::kString:
      w.bytes(1, v.string_value.data(), v.string_value.size());
      break;
    case AnyValue::Kind::kBool:
      w.varint(2, v.bool_value ? 1 : 0);
      break;
    case AnyValue::Kind::kInt:
      w.varint(3, static_cast<uint64_t>(v.int_value));
      break;
    case AnyValue::Kind::kDouble:
      double_field(w, 4, v.double_value);
      break;
    case AnyValue::Kind::kArray:
      w.message(5, [&] {
        for (const AnyValue& element : v.array_value) w.message(1, [&] { any_value(w, element); });
      });
      break;
    case AnyValue::Kind::kKvList:
      w.message(6, [&] { key_values(w, 1, v.kvlist_value); });
      break;
  }
}

// repeated common.v1.KeyValue{key = 1, value = 2}; the value is written even when kEmpty.
template <class W>
void key_values(W& w, uint32_t field, const Attributes& attributes) {
  for (const KeyValue& kv : attributes) {
    w.message(field, [&] {
      string_field(w, 1, kv.key);
      w.message(2, [&] { any_value(w, kv.value); });
    });
  }
}

// Export*ServiceRequest{1: Resource*{1: resource, 2: Scope*{1: scope, 2: items}}}: the same
// shape for the three signals.
template <class W, class Items>
void export_request(W& w, const Resource* resource, const Scope& scope, Items&& items) {
  w.message(1, [&] {
    if (resource != nullptr && !resource->attributes.empty()) {
      w.message(1, [&] { key_values(w, 1, resource->attributes); });
    }
    w.message(2, [&] {
      if (!scope.name.empty() || !scope.version.empty()) {
        w.message(1, [&] {
          string_field(w, 1, scope.name);
          string_field(w, 2, scope.version);
        });
      }
      items();
    });
  });
}

// logs.v1.LogRecord
template <class W>
void log_record(W& w, const LogRecord& r) {
  fixed64_field(w, 1, r.time_unix_nano);
  enum_field(w, 2, r.severity_number);
  string_field(w, 3, r.severity_text);
  if (r.body.kind != AnyValue::Kind::kEmpty) w.message(5, [&] { any_value(w, r.body); });
  key_values(w, 6, r.attributes);
  fixed32_field(w, 8, r.flags);
  id_field(w, 9, r.trace_id);
  id_field(w, 10, r.span_id);
  fixed64_field(w, 11, r.observed_time_unix_nano);
}

template <class W>
void write_request(W& w, const LogsRequest& r) {
  export_request(w, r.resource, r.scope, [&] {
    for (const LogRecord& record : r.records) w.message(2, [&] { log_record(w, record); });
  });
}

// trace.v1.Span
template <class W>
void span(W& w, const Span& s) {
  id_field(w, 1, s.trace_id);
  id_field(w, 2, s.span_id);
  id_field(w, 4, s.parent_span_id);
  string_field(w, 5, s.name);
  enum_field(w, 6, static_cast<int32_t>(s.kind));
  fixed64_field(w, 7, s.start_time_unix_nano);
  fixed64_field(w, 8, s.end_time_unix_nano);
  key_values(w, 9, s.attributes);
  for (const SpanEvent& event : s.events) {
    w.message(11, [&] {
      fixed64_field(w, 1, event.time_unix_nano);
      string_field(w, 2, event.name);
      key_values(w, 3, event.attributes);
    });
  }
  if (s.status.code != SpanStatus::Code::kUnset || !s.status.message.empty()) {
    w.message(15, [&] {
      string_field(w, 2, s.status.message);
      enum_field(w, 3, static_cast<int32_t>(s.status.code));
    });
  }
  fixed32_field(w, 16, s.flags);
}

template <class W>
void write_request(W& w, const TracesRequest& r) {
  export_request(w, r.resource, r.scope, [&] {
    for (const Span& s : r.spans) w.message(2, [&] { span(w, s); });
  });
}

// metrics.v1.NumberDataPoint: as_double / as_int are a oneof, written even when zero.
template <class W>
void number_point(W& w, const NumberDataPoint& p) {
  fixed64_field(w, 2, p.start_time_unix_nano);
  fixed64_field(w, 3, p.time_unix_nano);
  if (p.is_double) {
    double_field(w, 4, p.as_double);
  } else {
    w.fixed64(6, static_cast<uint64_t>(p.as_int));  // sfixed64
  }
  key_values(w, 7, p.attributes);
}

// metrics.v1.HistogramDataPoint: sum, min and max are `optional` (explicit presence).
template <class W>
void histogram_point(W& w, const HistogramDataPoint& p) {
  fixed64_field(w, 2, p.start_time_unix_nano);
  fixed64_field(w, 3, p.time_unix_nano);
  fixed64_field(w, 4, p.count);
  double_field(w, 5, p.sum);
  packed_field(w, 6, p.bucket_counts);
  packed_field(w, 7, p.explicit_bounds);
  key_values(w, 9, p.attributes);
  if (p.min) double_field(w, 11, *p.min);
  if (p.max) double_field(w, 12, *p.max);
}

// metrics.v1.Metric: gauge = 5, sum = 7, histogram = 9 (a oneof: written even with no points).
template <class W>
void metric(W& w, const Metric& m) {
  string_field(w, 1, m.name);
  string_field(w, 2, m.description);
  string_field(w, 3, m.unit);
  switch (m.kind) {
    case Metric::Kind::kGauge:
      w.message(5, [&] {
        for (const NumberDataPoint& p : m.number_points) w.message(1, [&] { number_point(w, p); });
      });
      break;
    case Metric::Kind::kSum:
      w.message(7, [&] {
        for (const NumberDataPoint& p : m.number_points) w.message(1, [&] { number_point(w, p); });
        enum_field(w, 2, static_cast<int32_t>(m.temporality));
        if (m.is_monotonic) w.varint(3, 1);
      });
      break;
    case Metric::Kind::kHistogram:
      w.message(9, [&] {
        for (const HistogramDataPoint& p : m.histogram_points) {
          w.message(1, [&] { histogram_point(w, p); });
        }
        enum_field(w, 2, static_cast<int32_t>(m.temporality));
      });
      break;
  }
}

template <class W>
void write_request(W& w, const MetricsRequest& r) {
  export_request(w, r.resource, r.scope, [&] {
    for (const Metric& m : r.metrics) w.message(2, [&] { metric(w, m); });
  });
}

template <class Request>
void encode(const Request& request, std::string& out) {
  // The message lengths of pass 1, kept per thread so a warm encoder allocates nothing.
  thread_local std::vector<size_t> sizes;
  sizes.clear();
  Sizer sizer(sizes);
  write_request(sizer, request);

  out.resize(sizer.size());
  Writer writer(out.data(), sizes.data());
  write_request(writer, request);
  assert(writer.position() == out.data() + out.size());

  // Don't hold on to the table of one unusually large request (8 MiB of lengths).
  if (sizes.capacity() > (size_t{1} << 20)) sizes = std::vector<size_t>();
}

}  // namespace

void encode_protobuf(const LogsRequest& request, std::string& out) { encode(request, out); }
void encode_protobuf(const TracesRequest& request, std::string& out) { encode(request, out); }
void encode_protobuf(const MetricsRequest& request, std::string& out) { encode(request, out); }

}  // namespace relay::otlp
