// Autograd as closures. Each result of a recorded op holds a Node with an
// edge per input (where that input's gradient goes: the node that produced
// it, or the leaf tensor that accumulates it), what its backward needs
// (captured by the closure) and the closure itself. A node does not keep its
// inputs' tensors: an intermediate's memory is freed as soon as no closure
// saved it, as in PyTorch. backward() orders the graph topologically once, feeds each
// node the sum of the gradients reaching it, accumulates leaf gradients into
// .grad() with +=, then frees the graph (unless retain_graph).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lrt {

// Maps the gradient of a node's output to one gradient per input (an
// undefined Tensor where an input gets none).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

// Where a node sends the gradient of one input. Both empty: the input
// gets none (undefined, or a leaf that does not require grad).
struct Edge {
  std::shared_ptr<Node> fn;  // the input was the result of this node
  Tensor leaf;               // the input was this leaf, which requires grad
  Shape shape;               // the input's shape, which its gradient must have
  bool live() const { return fn != nullptr || leaf.defined(); }
};

// What the backward of a plain conversion does: its gradient converted to
// the input's dtype and memory format (record_cast).
struct GradCast {
  DType dtype;
  MemoryFormat format;
};

class Node {
 public:
  Node(std::string name, std::vector<Tensor> inputs, BackwardFn fn);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  const std::string& name() const { return name_; }
  const std::vector<Edge>& edges() const { return edges_; }
  bool released() const { return released_; }
  std::vector<Tensor> apply(const Tensor& grad_out);
  void release();  // drops edges and saved values
  // Set for a node made by record_cast: its backward is that conversion.
  const std::optional<GradCast>& cast() const { return cast_; }
  void set_cast(GradCast c) { cast_ = c; }

 private:
  std::string name_;
  std::vector<Edge> edges_;
  BackwardFn fn_;
  std::optional<GradCast> cast_;
  bool released_ = false;
};

// Whether ops record a graph on this thread (on by default).
bool grad_enabled();
void set_grad_enabled(bool enabled);

// RAII scope in which no op records a graph (evaluation, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op over these inputs should be recorded.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches a node to a freshly computed result when any input requires grad and
// grad mode is on; returns the result either way. backward receives the
// gradient with the result's shape.
Tensor record(const char* name, Tensor result, std::vector<Tensor> inputs, BackwardFn backward);

// record() for a conversion of one input (a dtype or layout change, as
// to_each makes): its backward converts the gradient back to cast.dtype in
// cast.format. Where the input is a leaf, backward() defers that conversion
// to the end of the pass and makes all the deferred ones of a device
// together (kernels::copy_each: one launch on CUDA for the float32 weights'
// bfloat16 gradients) before adding each to its leaf's .grad, in the order
// they arrived: each conversion gives the bits of converting alone, and a
// leaf that also gets gradients by other paths has those added first. The
// unconverted gradients are kept until then (for the weights of a bf16
// ResNet50, 2 bytes a parameter, while their float32 ones are not yet made).
// Should the pass throw, the deferred gradients are dropped.
Tensor record_cast(const char* name, Tensor result, const Tensor& input, GradCast cast);

// Runs a backward pass from root with seed gradient seed (root's shape).
void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph);

// For a backward closure while the engine runs it: the gradient already
// waiting for its input `input` (from the input's other consumers), handed
// over when the engine holds it alone (no other tensor shares its storage),
// it has dtype dt, it is dense in format f and its data is 16-byte aligned. The closure may then add its
// own contribution into it in place and must return it (or a view of its
// storage holding the sum) as that input's gradient: the engine keeps it
// instead of adding the two in a separate pass. Undefined, and nothing
// handed over, otherwise (or outside a backward pass).
Tensor take_waiting_grad(size_t input, DType dt, MemoryFormat f);

}  // namespace lrt
