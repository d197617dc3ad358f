// torch.save checkpoints (the zip format of torch >= 1.6), read and written with libtorch's own serialization:
// caffe2::serialize::PyTorchStreamReader/Writer for the archive, torch::jit::Unpickler/Pickler for data.pkl.
//
// Reading. libtorch's Unpickler is written for TorchScript's pickles, and three things that Python's pickler
// writes into every torch.save checkpoint stop it (pytorch/pytorch#100741, still open):
//  - `collections.OrderedDict()` (every model.state_dict()) is unpickled as None, so its SETITEMS fail;
//  - BUILD (an object's state: a state dict's `_metadata`, an argparse.Namespace's fields) calls the global
//    below the state, which after a REDUCE is the object itself, not a global;
//  - LONG1 integers of fewer than 8 bytes (Python writes the shortest form, e.g. 2**40 in 6 bytes) are refused.
// Rather than fork the Unpickler (R's lantern carries a patched copy), normalise_pickle() makes a copy of
// data.pkl in which those few opcode patterns are replaced by equivalents the stock Unpickler reads; it only steps
// over opcodes by their argument sizes and builds no values, so the unpickling itself is libtorch's (it also
// refuses a length or memo index past the end of data.pkl, for which the Unpickler would first allocate
// gigabytes, and the result is checked: nesting depth, storages no larger than their records). Globals of
// Python classes libtorch does not know (argparse.Namespace, numpy scalars, torch.Size, ...) go to a type
// resolver that gives each a placeholder class, and to an object loader that makes an empty object of it (its
// state is dropped); flatten() then skips them, as it skips every value that is not a tensor or a container.
//
// Writing: {key: {name: tensor}} as plain dicts with the Pickler (no TorchScript type tags, which
// torch.load(weights_only=True) refuses) and writeArchiveAndTensors, into path.tmp, renamed over path.
#include <caffe2/serialize/inline_container.h>
#include <pthread.h>
#include <sys/stat.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/storage_context.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common.h"

using namespace ll;

namespace {

using c10::IValue;

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// ------------------------------------------------------------------------------------------ the normaliser

// A pickle opcode and the bytes it spans (opcode included).
struct Token {
  uint8_t op;
  size_t begin, end;
};

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

constexpr size_t kUnknownOp = SIZE_MAX;

// The end of the token whose opcode is at `at`, for the opcodes of pickle protocols 0–2 (Python's pickletools);
// 0 for an argument that runs past the end of s, kUnknownOp for any other byte.
size_t token_end(const std::string& s, size_t at) {
  const size_t n = s.size(), a = at + 1;  // a: where the argument starts
  auto fixed = [&](size_t len) -> size_t { return a + len <= n ? a + len : 0; };
  auto lines = [&](int count) -> size_t {
    size_t p = a;
    for (int i = 0; i < count; i++) {
      size_t nl = s.find('\n', p);
      if (nl == std::string::npos) return 0;
      p = nl + 1;
    }
    return p;
  };
  switch (static_cast<uint8_t>(s[at])) {
    // no argument: MARK STOP POP POP_MARK DUP NONE BINPERSID REDUCE APPEND BUILD DICT EMPTY_DICT APPENDS LIST
    // EMPTY_LIST OBJ SETITEM TUPLE EMPTY_TUPLE SETITEMS NEWOBJ TUPLE1 TUPLE2 TUPLE3 NEWTRUE NEWFALSE
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a': case 'b':
    case 'd': case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u':
    case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89:
      return a;
    case 'K': case 'h': case 'q': case 0x80: case 0x82:  // BININT1 BINGET BINPUT PROTO EXT1
      return fixed(1);
    case 'M': case 0x83:  // BININT2 EXT2
      return fixed(2);
    case 'J': case 'j': case 'r': case 0x84:  // BININT LONG_BINGET LONG_BINPUT EXT4
      return fixed(4);
    case 'G':  // BINFLOAT
      return fixed(8);
    case 'F': case 'I': case 'L': case 'P': case 'S': case 'V': case 'g': case 'p':  // text forms: one line
      return lines(1);
    case 'c': case 'i':  // GLOBAL INST: module and name lines
      return lines(2);
    case 'U': case 0x8a:  // SHORT_BINSTRING LONG1: a 1-byte length
      return a + 1 <= n ? fixed(1 + static_cast<uint8_t>(s[a])) : 0;
    case 'T': case 'X': case 0x8b: {  // BINSTRING BINUNICODE LONG4: a 4-byte length
      if (a + 4 > n) return 0;
      uint32_t len = le32(s, a);
      if (s[at] != 'X' && len > INT32_MAX) return 0;  // negative signed lengths
      return len <= n - a - 4 ? a + 4 + len : 0;
    }
    default:
      return kUnknownOp;
  }
}

// The `torch.X` globals the stock Unpickler knows (torch.device, the storage classes, the quantisation schemes,
// torch.Tensor after _rebuild_from_type_v2); it refuses every other one, so those are sent to the type resolver.
bool stock_torch_global(const std::string& name) {
  static const std::unordered_set<std::string> known = {
      "device", "Tensor", "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric",
      "per_channel_symmetric", "per_channel_affine_float_qparams"};
  return known.count(name) > 0 || (name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0);
}

// The torch._utils._rebuild_* functions the stock Unpickler implements for Python's tensors (its sparse one
// expects the layout as an int, but Python pickles it as the global torch.sparse_coo, so it never succeeds).
bool stock_rebuild(const std::string& name) {
  return name == "_rebuild_tensor_v2" || name == "_rebuild_qtensor" || name == "_rebuild_parameter";
}

// A copy of a pickle with these replacements, which make it readable by the stock Unpickler (see the top of the
// file); everything else is copied unchanged, and from the first opcode of a later protocol on, the rest is copied
// as it is, for the Unpickler to report. An argument that runs past the end is an error here.
//  1. `<OrderedDict class> [BINPUT] EMPTY_TUPLE REDUCE` → `<class> [BINPUT] NEWOBJ EMPTY_DICT`: the class (the
//     GLOBAL, or a BINGET of the memo slot its BINPUT filled) is popped again (the stock NEWOBJ only pops) and a
//     plain dict takes the OrderedDict's place; its items follow as SETITEMS.
//  2. BUILD → NEWOBJ: an object's state is popped and dropped (placeholders have no fields to fill; an
//     OrderedDict's `_metadata` is not needed).
//  3. NEWOBJ → REDUCE: `cls.__new__(cls, *args)` becomes a call of the class on its arguments, which for a
//     placeholder class makes the (empty) object at once.
//  4. LONG1 of 0–7 bytes → LONG1 of 8 bytes, sign-extended (the same integer).
//  5. GLOBAL torch <name> the stock Unpickler does not know → GLOBAL layerlock.torch <name>, a placeholder;
//     GLOBAL torch._utils _rebuild_<kind> it cannot rebuild (sparse tensors, ...) → a name the resolver refuses.
std::string normalise_pickle(const std::string& s) {
  std::vector<Token> toks;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = token_end(s, pos);
    if (end == kUnknownOp) break;  // the Unpickler reports it
    // (the Unpickler would first allocate what a damaged length claims, e.g. 4 GB for a string)
    if (end == 0)
      fail("the opcode at byte " + std::to_string(pos) + " runs past the end of data.pkl (" +
           std::to_string(s.size()) + " bytes; truncated or damaged)");
    toks.push_back({static_cast<uint8_t>(s[pos]), pos, end});
    pos = end;
    if (toks.back().op == '.') break;
  }
  std::string out;
  out.reserve(s.size() + s.size() / 8 + 16);
  auto raw = [&](const Token& t) { out.append(s, t.begin, t.end - t.begin); };
  auto memo_id = [&](const Token& t) -> uint32_t {
    return t.op == 'q' || t.op == 'h' ? static_cast<uint8_t>(s[t.begin + 1]) : le32(s, t.begin + 1);
  };
  // Python numbers memo slots 0, 1, 2, ... as it fills them (at most one per opcode); the stock Unpickler pads its
  // memo up to any index, so a damaged LONG_BINPUT of 4e9 would fill 64 GB with Nones.
  auto check_put = [&](const Token& t, size_t index) {
    if ((t.op == 'q' || t.op == 'r') && memo_id(t) > index)
      fail("memo index " + std::to_string(memo_id(t)) + " at byte " + std::to_string(t.begin) +
           " is out of range (a damaged file?)");
  };
  std::unordered_set<uint32_t> od_memo;  // memo slots holding the OrderedDict class
  const size_t n = toks.size();
  for (size_t i = 0; i < n; i++) {
    const Token& t = toks[i];
    check_put(t, i);
    bool od = false;
    if (t.op == 'c') {
      size_t nl = s.find('\n', t.begin + 1);
      std::string module = s.substr(t.begin + 1, nl - t.begin - 1);
      std::string name = s.substr(nl + 1, t.end - nl - 2);
      if (module == "collections" && name == "OrderedDict") {
        od = true;
      } else if (module == "torch" && !stock_torch_global(name)) {
        out += "clayerlock.torch\n";
        out.append(name).push_back('\n');
        continue;
      } else if (module == "torch._utils" && name.rfind("_rebuild", 0) == 0 && !stock_rebuild(name)) {
        out += "clayerlock.unsupported.torch._utils\n";  // refused by the type resolver, naming it
        out.append(name).push_back('\n');
        continue;
      }
    } else if (t.op == 'h' || t.op == 'j') {
      od = od_memo.count(memo_id(t)) > 0;
    }
    if (od) {
      raw(t);
      size_t j = i + 1;
      if (t.op == 'c' && j < n && (toks[j].op == 'q' || toks[j].op == 'r')) {
        check_put(toks[j], j);
        od_memo.insert(memo_id(toks[j]));
        raw(toks[j++]);
      }
      if (j + 1 < n && toks[j].op == ')' && toks[j + 1].op == 'R') {
        out += "\x81}";
        j += 2;
      }
      i = j - 1;
      continue;
    }
    switch (t.op) {
      case 'b':
        out += '\x81';
        break;
      case 0x81:
        out += 'R';
        break;
      case 0x8a: {
        size_t len = static_cast<uint8_t>(s[t.begin + 1]);
        if (len >= 8) {
          raw(t);
          break;
        }
        bool negative = len > 0 && (static_cast<uint8_t>(s[t.begin + 1 + len]) & 0x80);
        out += "\x8a\x08";
        out.append(s, t.begin + 2, len);
        out.append(8 - len, negative ? '\xff' : '\0');
        break;
      }
      default:
        raw(t);
    }
  }
  if (n > 0) out.append(s, toks.back().end, std::string::npos);
  else out = s;
  return out;
}

// ------------------------------------------------------------------------------------------ reading

// libtorch's message without its backtrace or the "please report a bug" preamble of its internal asserts, on
// one line.
std::string clean(const std::string& what) {
  std::string m = what;
  const std::string bug = "please report a bug to PyTorch. ";
  size_t p = m.find(bug);
  if (p != std::string::npos) m = m.substr(p + bug.size());
  p = m.find(" This is an internal miniz error");
  if (p != std::string::npos) m = m.substr(0, p);
  p = m.find('\n');
  if (p != std::string::npos) m = m.substr(0, p);
  std::string out;  // control characters (bytes of a damaged file, in libtorch's message) as \xNN
  for (unsigned char c : m) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += "0123456789abcdef"[c >> 4];
      out += "0123456789abcdef"[c & 15];
    }
  }
  return out;
}

std::string hex_head(const unsigned char* b, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string h;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) h += ' ';
    h += digits[b[i] >> 4];
    h += digits[b[i] & 15];
  }
  return h;
}

// Runs fn on a thread with a stack of `bytes`, rethrowing what it throws. Unpickled values nest as deep as
// data.pkl is long (a TUPLE1 per byte), and libtorch frees nested IValues recursively: a crafted file of a few
// megabytes would overflow the caller's stack.
template <class F>
void on_big_stack(size_t bytes, F& fn) {
  struct Ctx {
    F* fn;
    std::exception_ptr err;
  } ctx{&fn, nullptr};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  int rc = pthread_attr_setstacksize(&attr, bytes);
  pthread_t th;
  if (rc == 0) {
    rc = pthread_create(
        &th, &attr,
        [](void* p) -> void* {
          auto* c = static_cast<Ctx*>(p);
          try {
            (*c->fn)();
          } catch (...) {
            c->err = std::current_exception();
          }
          return nullptr;
        },
        &ctx);
  }
  pthread_attr_destroy(&attr);
  if (rc != 0)
    fail("cannot start a reader thread with a " + std::to_string(bytes >> 20) + " MB stack: " + std::strerror(rc));
  pthread_join(th, nullptr);
  if (ctx.err) std::rethrow_exception(ctx.err);
}

constexpr size_t kMaxPickleBytes = size_t(64) << 20;   // data.pkl: VideoMAE's is a few tens of kilobytes
constexpr size_t kMaxNames = size_t(1) << 22;          // the handle table holds 4M tensors
constexpr size_t kMaxVisits = size_t(1) << 24;         // containers and values visited while flattening
constexpr size_t kMaxDepth = 1000;                      // containers inside containers (a state dict: 2 or 3)
constexpr size_t kMaxName = size_t(1) << 16;            // bytes of a flattened name

bool supported_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::kByte: case c10::kInt: case c10::kLong: case c10::kHalf: case c10::kFloat: case c10::kDouble:
    case c10::kBool: case c10::kBFloat16:
      return true;
    default:
      return false;
  }
}

// A dict key as a name part: strings as they are, other keys as Python's str() would print most of them.
std::string key_text(const IValue& k) {
  if (k.isString()) return k.toStringRef();
  if (k.isInt()) return std::to_string(k.toInt());
  if (k.isBool()) return k.toBool() ? "True" : "False";
  if (k.isNone()) return "None";
  std::ostringstream o;
  o << k;
  return o.str();
}

// Walks dicts, lists and tuples depth-first (without recursion), joining keys and indices with '.', and collects
// the tensors; every other value is skipped. A container inside itself is not entered again; containers nested
// deeper than kMaxDepth, or names longer than kMaxName, are errors (their names would grow with the square of
// the depth).
std::vector<std::pair<std::string, at::Tensor>> flatten(const IValue& root) {
  struct Frame {
    const void* self;
    std::string prefix;
    std::vector<std::pair<std::string, IValue>> children;
    size_t next = 0;
  };
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::unordered_set<std::string> seen;
  std::unordered_set<const void*> open;  // the containers on the current path
  std::vector<Frame> stack;
  size_t visits = 0;
  auto join = [](const std::string& prefix, const std::string& part) {
    return prefix.empty() ? part : prefix + "." + part;
  };
  // Handles one value found at `name`: a tensor is kept, a container is entered.
  auto visit = [&](const std::string& name, const IValue& v, bool is_root) {
    if (++visits > kMaxVisits)
      fail("data.pkl expands to more than " + std::to_string(kMaxVisits) + " values (shared containers?)");
    if (v.isTensor()) {
      if (name.size() > kMaxName) fail("a key path longer than " + std::to_string(kMaxName) + " bytes");
      if (name.find('\0') != std::string::npos) fail("a key holds a NUL character: '" + name + "'");
      if (!seen.insert(name).second) fail("two entries flatten to the same name '" + name + "'");
      if (out.size() >= kMaxNames) fail("more than " + std::to_string(kMaxNames) + " tensors");
      out.emplace_back(name, v.toTensor());
      return;
    }
    if (!v.isGenericDict() && !v.isList() && !v.isTuple()) return;
    const void* self = v.internalToPointer();
    if (open.count(self)) return;
    if (stack.size() >= kMaxDepth)
      fail("containers nest more than " + std::to_string(kMaxDepth) + " levels deep, at '" + name.substr(0, 200) +
           "...'");
    if (name.size() > kMaxName) fail("a key path longer than " + std::to_string(kMaxName) + " bytes");
    Frame f{self, is_root ? std::string() : name, {}, 0};
    if (v.isGenericDict()) {
      for (const auto& e : v.toGenericDict()) f.children.emplace_back(key_text(e.key()), e.value());
    } else {
      c10::ArrayRef<IValue> items = v.isList() ? v.toListRef() : v.toTupleRef().elements().asArrayRef();
      for (size_t i = 0; i < items.size(); i++) f.children.emplace_back(std::to_string(i), items[i]);
    }
    open.insert(self);
    stack.push_back(std::move(f));
  };
  visit("", root, true);
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == f.children.size()) {
      open.erase(f.self);
      stack.pop_back();
      continue;
    }
    auto& [part, child] = f.children[f.next++];
    std::string name = join(f.prefix, part);
    IValue v = child;  // visit may grow the stack, which moves the frame
    visit(name, v, false);
  }
  return out;
}

// Reads a torch.save file into named CPU tensors. Every error names the file.
std::vector<std::pair<std::string, at::Tensor>> load_checkpoint(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail(path + ": cannot open: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path + ": not a regular file");
  if (st.st_size == 0) fail(path + ": the file is empty (not a torch.save checkpoint)");
  unsigned char head[16] = {0};
  size_t got = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(head, 1, sizeof head, f);
    std::fclose(f);
  } else {
    fail(path + ": cannot open: " + std::strerror(errno));
  }
  bool zip = got >= 4 && head[0] == 'P' && head[1] == 'K' &&
             ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6));
  if (!zip) {
    // torch.save before 1.6, or with _use_new_zipfile_serialization=False: a pickled magic number
    // (0x1950a86a20f9469cfc6c as a LONG1) and then the pickles of the object and its storages.
    static const unsigned char legacy[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (got >= 14 && head[0] == 0x80 && std::memcmp(head + 2, legacy, sizeof legacy) == 0)
      fail(path + ": the legacy torch.save format (torch < 1.6, or _use_new_zipfile_serialization=False), which "
                  "is not read here; re-save it with torch >= 1.6's default: torch.save(torch.load(path), path)");
    fail(path + ": not a torch.save checkpoint: not a zip archive (it starts with " + hex_head(head, got) +
         "; torch >= 1.6 writes a zip archive)");
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    fail(path + ": cannot read the zip archive (truncated or corrupt?): " + clean(e.what_without_backtrace()));
  }
  std::string where = "data.pkl";
  try {
    if (reader->hasRecord("constants.pkl"))
      fail(path + ": a TorchScript archive (torch.jit.save), not a torch.save checkpoint");
    if (!reader->hasRecord("data.pkl")) fail(path + ": the zip archive has no data.pkl (not written by torch.save?)");
    size_t pkl_size = reader->getRecordSize("data.pkl");
    if (pkl_size > kMaxPickleBytes)
      fail(path + ": data.pkl is " + std::to_string(pkl_size) + " bytes, more than the " +
           std::to_string(kMaxPickleBytes >> 20) + " MB this reader accepts");
    auto [pkl_ptr, pkl_len] = reader->getRecord("data.pkl");
    std::string pkl = normalise_pickle(std::string(static_cast<const char*>(pkl_ptr.get()), pkl_len));
    pkl_ptr.clear();
    if (pkl.size() >= 2 && static_cast<uint8_t>(pkl[0]) == 0x80 && pkl[1] != 2)
      fail(path + ": data.pkl is pickle protocol " + std::to_string(static_cast<uint8_t>(pkl[1])) +
           "; libtorch's unpickler reads protocol 2, torch.save's default (re-save it without pickle_protocol)");

    std::vector<std::pair<std::string, at::Tensor>> items;
    auto work = [&] {
      // Storage records and their sizes (checked against the storages below: the Unpickler trusts numel).
      std::unordered_map<const void*, size_t> records;
      auto read_record = [&](const std::string& key) -> at::DataPtr {
        where = "data/" + key;
        auto [ptr, size] = reader->getRecord("data/" + key);
        records[ptr.get()] = size;
        where = "data.pkl";
        return std::move(ptr);
      };
      auto cu = std::make_shared<torch::jit::CompilationUnit>();
      std::unordered_map<std::string, c10::ClassTypePtr> placeholders;
      torch::jit::TypeResolver resolve = [&](const c10::QualifiedName& qn) -> c10::StrongTypePtr {
        std::string full = qn.qualifiedName();
        const std::string unsupported = "layerlock.unsupported.";
        if (full.rfind(unsupported, 0) == 0) full = full.substr(unsupported.size());
        if (full.rfind("torch._utils._rebuild", 0) == 0 || full.rfind("torch._tensor._rebuild", 0) == 0)
          fail("unsupported storage: a tensor stored with " + full + ", which libtorch's unpickler does not "
               "rebuild (sparse and other special tensors are not read)");
        auto& t = placeholders[full];
        if (!t) t = c10::ClassType::create(c10::QualifiedName("__layerlock__.unknown." + full), cu);
        return c10::StrongTypePtr(cu, t);
      };
      torch::jit::ObjLoader make_object = [](const at::StrongTypePtr& type, const IValue&) {
        return c10::ivalue::Object::create(type, 0);
      };
      size_t at = 0;
      auto read = [&](char* buf, size_t len) -> size_t {
        size_t n = std::min(len, pkl.size() - at);
        std::memcpy(buf, pkl.data() + at, n);
        at += n;
        return n;
      };
      IValue root;
      {
        // The storage context loads a storage once however many tensors refer to it (views keep sharing it).
        torch::jit::Unpickler unpickler(read, resolve, make_object, read_record, c10::Device(c10::kCPU), false,
                                        torch::jit::Unpickler::defaultTypeParser,
                                        std::make_shared<torch::jit::DeserializationStorageContext>());
        unpickler.set_version(reader->version());
        root = unpickler.parse_ivalue();
      }
      where = "data.pkl";
      items = flatten(root);
      for (auto& [name, t] : items) {
        std::string what = path + ": tensor '" + name + "': unsupported storage: ";
        if (t.layout() != c10::kStrided || t.is_quantized()) {
          std::ostringstream kind;
          if (t.is_quantized()) kind << "quantized";
          else kind << t.layout();
          fail(what + "a " + kind.str() + " tensor (only dense ones are read)");
        }
        if (!t.device().is_cpu()) fail(what + "on device " + t.device().str());
        if (!supported_dtype(t.scalar_type()))
          fail(what + "dtype " + c10::toString(t.scalar_type()) +
               " (layerlock reads u8, i32, i64, f16, f32, f64, bool and bf16)");
        size_t nbytes = t.storage().nbytes();
        if (nbytes > 0) {
          auto r = records.find(t.storage().data());
          if (r == records.end() || r->second < nbytes)
            fail(what + "its storage needs " + std::to_string(nbytes) + " bytes but its record holds " +
                 (r == records.end() ? std::string("none") : std::to_string(r->second)));
        }
      }
      // root, the unpickler's memo and the placeholders are freed here, on this thread's stack
    };
    on_big_stack((size_t(64) << 20) + 128 * pkl.size(), work);
    return items;
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    if (m.rfind(path + ":", 0) == 0) throw;
    fail(path + ": " + where + ": " + clean(m));
  } catch (const c10::Error& e) {
    fail(path + ": " + where + ": " + clean(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail(path + ": " + where + ": " + clean(e.what()));
  }
}

// `count` NUL-terminated strings in the `len` bytes at p.
std::vector<std::string> strings_of(const char* p, int len, int count, const char* what) {
  if (len < 0 || count < 0) throw std::invalid_argument(std::string("negative length of ") + what);
  if (len > 0 && p == nullptr) throw std::invalid_argument(std::string("null ") + what);
  std::vector<std::string> out;
  int at = 0;
  while (at < len) {
    const void* nul = std::memchr(p + at, 0, len - at);
    if (nul == nullptr) throw std::invalid_argument(std::string(what) + ": the last string is not NUL-terminated");
    int end = static_cast<int>(static_cast<const char*>(nul) - p);
    out.emplace_back(p + at, end - at);
    at = end + 1;
  }
  if (static_cast<int>(out.size()) != count)
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(out.size()) + " strings, expected " +
                                std::to_string(count));
  return out;
}

}  // namespace

extern "C" {

int ll_torch_load(const char* path, int dev_type, int dev_index, ll_tensor* out, int max_out, char* names,
                  int names_cap, double* need2) {
  LL_I("torch_load", {
    if (path == nullptr) throw std::invalid_argument("null path");
    if (need2 == nullptr) throw std::invalid_argument("null output");
    const std::string p(path);
    c10::Device dev = device_of(dev_type, dev_index);
    auto items = load_checkpoint(p);
    size_t name_bytes = 0;
    for (auto& it : items) name_bytes += it.first.size() + 1;
    need2[0] = static_cast<double>(items.size());
    need2[1] = static_cast<double>(name_bytes);
    if (name_bytes > INT_MAX) fail(p + ": the names of its tensors take more than 2 GB");
    const int n = static_cast<int>(items.size());
    if (n > max_out || static_cast<int>(name_bytes) > names_cap) return n;  // the caller asks again
    if (n > 0 && (out == nullptr || names == nullptr)) throw std::invalid_argument("null output");
    std::vector<at::Tensor> ts;
    ts.reserve(n);
    try {
      for (auto& it : items) ts.push_back(dev.is_cpu() ? it.second : it.second.to(dev));
    } catch (const c10::Error& e) {
      fail(p + ": moving its tensors to " + dev.str() + ": " + clean(e.what_without_backtrace()));
    }
    size_t o = 0;
    for (auto& it : items) {
      std::memcpy(names + o, it.first.data(), it.first.size());
      names[o + it.first.size()] = 0;
      o += it.first.size() + 1;
    }
    int made = 0;
    try {
      for (; made < n; made++) out[made] = wrap(std::move(ts[made]));
    } catch (...) {
      for (int k = 0; k < made; k++) ImplPtr::reclaim(handles::release(out[k]));
      throw;
    }
    return n;
  })
}

int ll_torch_save(const char* path, const char* keys, int keys_len, const double* counts, int nkeys,
                  const char* names, int names_len, const ll_tensor* ts, int n) {
  LL_I("torch_save", {
    if (path == nullptr) throw std::invalid_argument("null path");
    const std::string p(path);
    auto key_list = strings_of(keys, keys_len, nkeys, "keys");
    auto name_list = strings_of(names, names_len, n, "names");
    if (nkeys > 0 && counts == nullptr) throw std::invalid_argument("null counts");
    BorrowList tl(ts, n);
    auto top = c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
    int k = 0;
    for (int g = 0; g < nkeys; g++) {
      int64_t c = to_i64(counts[g], "count");
      if (c < 0 || c > n - k) throw std::invalid_argument("the counts do not add up to the number of tensors");
      auto group = c10::impl::GenericDict(c10::StringType::get(), c10::TensorType::get());
      for (int64_t i = 0; i < c; i++, k++) {
        if (group.contains(name_list[k])) fail(p + ": '" + key_list[g] + "' names '" + name_list[k] + "' twice");
        // Stored as plain CPU data: views of one tensor keep sharing their storage.
        group.insert(name_list[k], tl.v[k].detach().cpu());
      }
      if (top.contains(key_list[g])) fail(p + ": the key '" + key_list[g] + "' is given twice");
      top.insert(key_list[g], group);
    }
    if (k != n) throw std::invalid_argument("the counts do not add up to the number of tensors");

    std::vector<char> pkl;
    torch::jit::Pickler pickler([&](const char* b, size_t len) { pkl.insert(pkl.end(), b, b + len); }, nullptr,
                                nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
    pickler.protocol();
    pickler.pushIValue(top);
    pickler.stop();

    const std::string tmp = p + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) fail(p + ": cannot create the temporary file " + tmp + ": " + std::strerror(errno));
    int werr = 0;  // the first write error; the writer is told every write succeeded, so that it never throws
                   // from its destructor
    try {
      {
        caffe2::serialize::PyTorchStreamWriter writer([&](const void* b, size_t len) -> size_t {
          if (werr == 0 && len > 0 && std::fwrite(b, 1, len, f) != len) werr = errno ? errno : EIO;
          return len;
        });
        torch::jit::writeArchiveAndTensors("data", pkl.data(), pkl.size(), pickler.tensorData(), writer);
        writer.writeEndOfFile();
      }
      if (werr == 0 && std::fflush(f) != 0) werr = errno;
      if (werr == 0 && ::fsync(fileno(f)) != 0) werr = errno;
    } catch (...) {
      std::fclose(f);
      std::remove(tmp.c_str());
      throw;
    }
    if (std::fclose(f) != 0 && werr == 0) werr = errno;
    if (werr != 0) {
      std::remove(tmp.c_str());
      fail(p + ": write failed (the previous file is intact): " + std::strerror(werr));
    }
    if (std::rename(tmp.c_str(), p.c_str()) != 0) {
      int e = errno;
      std::remove(tmp.c_str());
      fail(p + ": cannot rename " + tmp + " over it: " + std::strerror(e));
    }
    return 0;
  })
}

}  // extern "C"
