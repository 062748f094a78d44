// The backward engine: topological order by an iterative depth-first search
// (deep graphs do not overflow the stack), one pass in reverse order, gradient
// accumulation, graph release.
#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/ops.h"
#include "kernels/kernels.h"

namespace lrt {

namespace {
thread_local bool t_grad_enabled = true;

// a + b for gradients, without recording. Never writes into a or b: a
// gradient tensor may be shared (the gradient of an add goes to both sides).
Tensor grad_sum(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  return add(a, b);
}
bool held_alone(const Tensor& t);

// leaf.grad += g. The first gradient becomes the leaf's .grad as it is when
// nothing else holds it (the engine's own result, dense in the leaf's dtype
// and memory format), and is copied otherwise, so the in-place += of later
// passes never writes into a tensor that another node or the caller still
// holds; the copy takes the leaf's memory format (a channels_last leaf gets
// a channels_last gradient, as in PyTorch).
void accumulate_leaf_grad(const Tensor& leaf, Tensor g) {
  Tensor cur = leaf.grad();
  if (!cur.defined()) {
    const MemoryFormat f = memory_format_of(leaf);
    if (held_alone(g) && g.dtype() == leaf.dtype() && g.device() == leaf.device() && g.is_contiguous(f) &&
        (f == MemoryFormat::Contiguous || g.dim() == 4) && !g.requires_grad()) {
      leaf.impl()->grad = std::move(g);
      return;
    }
    Tensor first = empty(g.shape(), g.options(), f);
    kernels::copy(g, first);
    leaf.impl()->grad = first;
  } else if (cur.is_contiguous() && cur.dtype() == g.dtype() && cur.device() == g.device()) {
    kernels::binary(kernels::BinaryOp::Add, cur, g, cur);
  } else {
    leaf.impl()->grad = grad_sum(cur, g);
  }
}
// The gradients waiting for the inputs of the node being run, offered to its
// closure (take_waiting_grad). Set by run_backward around each closure.
struct WaitingGrads {
  std::vector<Tensor> offered;  // per input: the waiting gradient, if held alone
  std::vector<bool> taken;
};
thread_local WaitingGrads* t_waiting = nullptr;

// Sets t_waiting for one closure call and restores it after, even on a throw.
class WaitingScope {
 public:
  explicit WaitingScope(WaitingGrads* w) : prev_(t_waiting) { t_waiting = w; }
  ~WaitingScope() { t_waiting = prev_; }
  WaitingScope(const WaitingScope&) = delete;
  WaitingScope& operator=(const WaitingScope&) = delete;

 private:
  WaitingGrads* prev_;
};

// No other tensor (or view) shares t's impl or storage.
bool held_alone(const Tensor& t) { return t.impl_ptr().use_count() == 1 && t.storage().use_count() == 1; }
}  // namespace

Tensor take_waiting_grad(size_t input, DType dt, MemoryFormat f) {
  if (!t_waiting || input >= t_waiting->offered.size() || t_waiting->taken[input]) return Tensor();
  const Tensor& t = t_waiting->offered[input];
  if (!t.defined() || t.dtype() != dt || (f == MemoryFormat::ChannelsLast && t.dim() != 4) || !t.is_contiguous(f))
    return Tensor();
  // Where the taker's kernels were chosen on aligned buffers (cuDNN's
  // algorithm for a shape), a view into a larger buffer might not suit them.
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return Tensor();
  t_waiting->taken[input] = true;
  return t;
}

Node::Node(std::string name, std::vector<Tensor> inputs, BackwardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {
  edges_.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && !t.is_leaf()) {
      e.fn = t.grad_fn();
      e.shape = t.shape();
    } else if (t.defined() && t.requires_grad()) {
      e.leaf = t;
      e.shape = t.shape();
    }
    edges_.push_back(std::move(e));
  }
}

std::vector<Tensor> Node::apply(const Tensor& grad_out) {
  LRT_CHECK(!released_, "backward through the graph a second time (at ", name_,
            "): its saved values were freed after the first backward; pass retain_graph=true to the first call");
  return fn_(grad_out);
}

void Node::release() {
  fn_ = nullptr;
  edges_.clear();
  released_ = true;
}

Node::~Node() {
  // Destroying a long chain recursively (node -> edge -> node ...) would
  // overflow the stack. Instead each dying node hands the nodes it alone
  // keeps alive to a per-thread list, drained in a loop by the outermost
  // destructor.
  thread_local std::vector<std::shared_ptr<Node>> orphans;
  thread_local bool draining = false;
  fn_ = nullptr;  // its captures may hold the last other references to input tensors
  for (Edge& e : edges_)
    if (e.fn && e.fn.use_count() == 1) orphans.push_back(std::move(e.fn));
  edges_.clear();
  if (draining) return;
  draining = true;
  while (!orphans.empty()) {
    std::shared_ptr<Node> next = std::move(orphans.back());
    orphans.pop_back();
    next.reset();
  }
  draining = false;
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor result, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!t_grad_enabled) return result;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return result;
  // A result that shares an impl with an input (an op that returned its input)
  // must not get a node: it would point at itself.
  for (const Tensor& t : inputs)
    if (t.impl() == result.impl()) return result;
  result.impl()->grad_fn = std::make_shared<Node>(name, std::move(inputs), std::move(backward));
  result.impl()->requires_grad = true;
  return result;
}

Tensor record_cast(const char* name, Tensor result, const Tensor& input, GradCast cast) {
  const std::shared_ptr<Node> before = result.defined() ? result.grad_fn() : nullptr;
  Tensor out = record(name, std::move(result), {input},
                      [cast](const Tensor& g) { return std::vector<Tensor>{g.to(cast.dtype, cast.format)}; });
  // Only a node record() made here (none where grad mode is off or the input
  // needs no gradient; a result's earlier node is not this conversion).
  if (out.grad_fn() && out.grad_fn() != before) out.grad_fn()->set_cast(cast);
  return out;
}

namespace {
// A leaf's gradient whose conversion (a record_cast node's backward) waits
// for the end of the pass.
struct DeferredCast {
  Tensor leaf, grad;
  GradCast cast;
};

// Converts the deferred gradients, those of one device together, and adds
// each to its leaf in the order they were deferred.
void finish_casts(std::vector<DeferredCast>& deferred) {
  if (deferred.empty()) return;
  std::vector<Tensor> converted(deferred.size());
  std::vector<bool> done(deferred.size(), false);
  for (size_t first = 0; first < deferred.size(); ++first) {
    if (done[first]) continue;
    const Device dev = deferred[first].grad.device();
    std::vector<Tensor> srcs, dsts;
    for (size_t i = first; i < deferred.size(); ++i) {
      if (done[i] || deferred[i].grad.device() != dev) continue;
      const DeferredCast& d = deferred[i];
      const bool layout = d.cast.format == MemoryFormat::Contiguous || d.grad.dim() == 4;
      converted[i] = empty(d.grad.shape(), d.grad.options().with_dtype(d.cast.dtype),
                           layout ? d.cast.format : MemoryFormat::Contiguous);
      srcs.push_back(d.grad);
      dsts.push_back(converted[i]);
      done[i] = true;
    }
    kernels::copy_each(srcs, dsts);
  }
  for (size_t i = 0; i < deferred.size(); ++i) {
    deferred[i].grad = Tensor();  // the engine's last reference to the unconverted gradient
    accumulate_leaf_grad(deferred[i].leaf, std::move(converted[i]));
  }
  deferred.clear();
}
}  // namespace

void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph) {
  NoGradGuard no_grad;  // backward closures compute plain tensors
  if (root.is_leaf()) {
    accumulate_leaf_grad(root, seed);
    return;
  }

  // Topological order: a node comes after every node that consumes its output.
  // The order holds every node alive for the whole pass: releasing a node
  // drops its edges, which may be the last owners of nodes still to run.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root.grad_fn(), 0}};
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    const auto& edges = node->edges();
    if (next < edges.size()) {
      const std::shared_ptr<Node>& child = edges[next++].fn;
      if (child && seen.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> pending;
  pending[root.grad_fn().get()] = seed;
  std::vector<DeferredCast> deferred;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached it
    Tensor grad_out = std::move(found->second);
    pending.erase(found);
    const auto& edges = node->edges();
    // A conversion into a leaf: made with the others at the end.
    if (node->cast() && edges.size() == 1 && edges[0].leaf.defined()) {
      const Edge& e = edges[0];
      if (grad_out.defined() && e.leaf.requires_grad()) {
        LRT_CHECK(grad_out.shape() == e.shape, "backward of ", node->name(), " got a gradient of shape ",
                  to_string(grad_out.shape()), " for an input of shape ", to_string(e.shape));
        deferred.push_back({e.leaf, std::move(grad_out), *node->cast()});
      }
      if (!retain_graph) node->release();
      continue;
    }
    // Gradients already waiting for this node's inputs, that the engine holds
    // alone, are offered to the closure to accumulate into.
    WaitingGrads waiting;
    waiting.offered.resize(edges.size());
    waiting.taken.assign(edges.size(), false);
    for (size_t i = 0; i < edges.size(); ++i) {
      if (!edges[i].fn) continue;
      auto slot = pending.find(edges[i].fn.get());
      if (slot != pending.end() && held_alone(slot->second)) waiting.offered[i] = std::move(slot->second);
    }
    std::vector<Tensor> grads;
    {
      WaitingScope scope(&waiting);
      grads = node->apply(grad_out);
    }
    LRT_CHECK(grads.size() == edges.size(), "backward of ", node->name(), " returned ", grads.size(),
              " gradients for ", edges.size(), " inputs");
    for (size_t i = 0; i < edges.size(); ++i) {
      if (!waiting.offered[i].defined()) continue;
      Tensor& slot = pending.find(edges[i].fn.get())->second;
      if (!waiting.taken[i]) {
        slot = std::move(waiting.offered[i]);  // back where it was; summed below as usual
        continue;
      }
      LRT_CHECK(grads[i].defined() && grads[i].storage() == waiting.offered[i].storage(), "backward of ",
                node->name(), " took the waiting gradient of input ", i, " but did not return it");
      LRT_CHECK(grads[i].shape() == edges[i].shape, "backward of ", node->name(), " gave input ", i,
                " a gradient of shape ", to_string(grads[i].shape()), " for an input of shape ",
                to_string(edges[i].shape));
      slot = grads[i];   // already the sum
      grads[i] = Tensor();
    }
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      Tensor& g = grads[i];
      // A leaf frozen (requires_grad cleared) after the op was recorded gets
      // no gradient. One that starts requiring grad only after it has no
      // edge: as in PyTorch, the graph recorded then decides.
      if (!e.live() || !g.defined() || (e.leaf.defined() && !e.leaf.requires_grad())) continue;
      LRT_CHECK(g.shape() == e.shape, "backward of ", node->name(), " gave input ", i, " a gradient of shape ",
                to_string(g.shape()), " for an input of shape ", to_string(e.shape));
      if (e.leaf.defined()) {
        accumulate_leaf_grad(e.leaf, std::move(g));  // the engine's reference goes with it
      } else {
        Node* child = e.fn.get();
        auto slot = pending.find(child);
        if (slot == pending.end()) pending.emplace(child, g);
        else slot->second = grad_sum(slot->second, g);
      }
    }
    if (!retain_graph) node->release();
  }
  finish_casts(deferred);
}

}  // namespace lrt
