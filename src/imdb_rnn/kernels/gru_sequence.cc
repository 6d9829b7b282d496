// Fused CPU kernels for one direction of a Keras GRU (reset_after=True, sigmoid / tanh) over a
// whole right-padded sequence, and its gradient.
//
// The input projections (x @ kernel + input_bias) are computed by TensorFlow before the loop;
// these kernels run the recurrence: for every time step one small matrix product and the gate
// arithmetic, in one op instead of a dozen graph operations per step. Rows whose length is
// reached carry their state unchanged, exactly like a masked Keras GRU. Rows never interact, so
// large batches are split into blocks of rows that run their time loops on separate threads.
//
//   inner = h_prev @ recurrent_kernel + recurrent_bias        (batch, 3 units)
//   z = sigmoid(x_z + inner_z), r = sigmoid(x_r + inner_r)
//   c = tanh(x_h + r * inner_h)
//   h = z * h_prev + (1 - z) * c
//
// Compiled on first use by imdb_rnn.native with the C++ compiler and TensorFlow's headers; see
// docs/performance.md.

#include <algorithm>
#include <cstdint>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using RowVector = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using ConstRowVectorMap = Eigen::Map<const RowVector>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

// sigmoid(x) = (1 + tanh(x / 2)) / 2: Eigen vectorises tanh.
template <typename Expr>
auto Sigmoid(const Expr& x) {
  return (x * 0.5f).tanh() * 0.5f + 0.5f;
}

// Every rank is checked before any dimension is read, and every dimension before a kernel maps
// a buffer: a wrong shape is an InvalidArgument error, never a read past a tensor's end.
tensorflow::Status CheckRecurrentKernel(const Tensor& recurrent_kernel) {
  if (recurrent_kernel.dims() != 2 ||
      recurrent_kernel.dim_size(1) != 3 * recurrent_kernel.dim_size(0)) {
    return InvalidArgument("recurrent_kernel must be (units, 3 * units), got ",
                           recurrent_kernel.shape().DebugString());
  }
  return tensorflow::OkStatus();
}

tensorflow::Status CheckLengths(const Tensor& lengths, int64_t batch) {
  if (lengths.dims() != 1 || lengths.dim_size(0) != batch) {
    return InvalidArgument("lengths must be (batch,) with batch = ", batch, ", got ",
                           lengths.shape().DebugString());
  }
  return tensorflow::OkStatus();
}

tensorflow::Status CheckInputs(const Tensor& projected, const Tensor& lengths,
                               const Tensor& recurrent_kernel, const Tensor& recurrent_bias) {
  if (projected.dims() != 3) {
    return InvalidArgument("projected must be (time, batch, 3 * units), got ",
                           projected.shape().DebugString());
  }
  TF_RETURN_IF_ERROR(CheckRecurrentKernel(recurrent_kernel));
  const int64_t units = recurrent_kernel.dim_size(0);
  if (projected.dim_size(2) != 3 * units) {
    return InvalidArgument("projected's last dimension must be 3 * units = ", 3 * units,
                           ", got ", projected.dim_size(2));
  }
  if (recurrent_bias.dims() != 1 || recurrent_bias.dim_size(0) != 3 * units) {
    return InvalidArgument("recurrent_bias must be (3 * units,) = (", 3 * units, ",), got ",
                           recurrent_bias.shape().DebugString());
  }
  return CheckLengths(lengths, projected.dim_size(1));
}

tensorflow::Status CheckGradInputs(const Tensor& grad_states, const Tensor& states,
                                   const Tensor& activations, const Tensor& lengths,
                                   const Tensor& recurrent_kernel) {
  TF_RETURN_IF_ERROR(CheckRecurrentKernel(recurrent_kernel));
  const int64_t units = recurrent_kernel.dim_size(0);
  if (states.dims() != 3 || states.dim_size(2) != units) {
    return InvalidArgument("states must be (time, batch, units) with units = ", units, ", got ",
                           states.shape().DebugString());
  }
  if (grad_states.shape() != states.shape()) {
    return InvalidArgument("grad_states must have the shape of states, ",
                           states.shape().DebugString(), ", got ",
                           grad_states.shape().DebugString());
  }
  const int64_t time = states.dim_size(0);
  const int64_t batch = states.dim_size(1);
  if (activations.shape() != TensorShape({time, batch, 4 * units})) {
    return InvalidArgument("activations must be (time, batch, 4 * units) = ",
                           TensorShape({time, batch, 4 * units}).DebugString(), ", got ",
                           activations.shape().DebugString());
  }
  return CheckLengths(lengths, batch);
}

// Shape functions check the same ranks and dimensions where they are known, before reading any
// dimension (InferenceContext::Dim on a shape of lower rank is out of bounds).
tensorflow::Status KernelUnits(InferenceContext* c, int input, DimensionHandle* units,
                               DimensionHandle* three_units) {
  ShapeHandle kernel;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(input), 2, &kernel));
  *units = c->Dim(kernel, 0);
  TF_RETURN_IF_ERROR(c->Multiply(*units, 3, three_units));
  DimensionHandle unused;
  return c->Merge(c->Dim(kernel, 1), *three_units, &unused);
}

// Rows per block below which a batch is not split: smaller blocks make the per-step matrix
// products less efficient than one thread running the whole batch. Training batches (64 rows)
// stay whole, and the two directions use two cores; evaluation batches (1,024 rows) are split
// over TensorFlow's intra-op threads.
constexpr int64_t kMinRowsPerBlock = 128;

// Runs `work(begin, end)` over blocks of rows, in parallel on TensorFlow's CPU threads when the
// batch is large enough.
template <typename Work>
void ForRowBlocks(OpKernelContext* context, int64_t batch, const Work& work) {
  const auto* threads = context->device()->tensorflow_cpu_worker_threads();
  const int64_t blocks =
      std::max<int64_t>(1, std::min<int64_t>(threads->num_threads, batch / kMinRowsPerBlock));
  if (blocks == 1) {
    work(0, batch);
    return;
  }
  const int64_t rows_per_block = (batch + blocks - 1) / blocks;
  // One unit per block, each far above the sharder's minimum cost: one shard per block.
  tensorflow::Shard(blocks, threads->workers, blocks, /*cost_per_unit=*/1 << 30,
                    [&](int64_t first_block, int64_t end_block) {
                      for (int64_t block = first_block; block < end_block; ++block) {
                        const int64_t begin = block * rows_per_block;
                        const int64_t end = std::min(batch, begin + rows_per_block);
                        if (begin < end) work(begin, end);
                      }
                    });
}

}  // namespace

REGISTER_OP("ImdbRnnGruSequence")
    .Input("projected: float")
    .Input("lengths: int32")
    .Input("recurrent_kernel: float")
    .Input("recurrent_bias: float")
    .Attr("save_activations: bool = true")
    .Output("states: float")
    .Output("activations: float")
    .SetShapeFn([](InferenceContext* c) {
      DimensionHandle units, three_units, four_units, unused;
      TF_RETURN_IF_ERROR(KernelUnits(c, 2, &units, &three_units));
      TF_RETURN_IF_ERROR(c->Multiply(units, 4, &four_units));
      ShapeHandle projected, lengths, bias;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &projected));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(projected, 2), three_units, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &lengths));
      DimensionHandle batch;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(projected, 1), c->Dim(lengths, 0), &batch));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &bias));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(bias, 0), three_units, &unused));
      c->set_output(0, c->MakeShape({c->Dim(projected, 0), batch, units}));
      bool save = true;
      TF_RETURN_IF_ERROR(c->GetAttr("save_activations", &save));
      if (save) {
        c->set_output(1, c->MakeShape({c->Dim(projected, 0), batch, four_units}));
      } else {
        c->set_output(1, c->MakeShape({0}));
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Runs one GRU direction (Keras reset_after=True) over a right-padded sequence.

projected: (time, batch, 3 * units) input projections, input bias included, gates z | r | h.
lengths: (batch,) number of valid steps per row; later steps carry the state unchanged.
recurrent_kernel: (units, 3 * units).
recurrent_bias: (3 * units,).
states: (time, batch, units) state after every step (zero initial state).
activations: (time, batch, 4 * units) z | r | candidate | inner_h per step, for the gradient;
  an empty tensor when save_activations is false.
)doc");

REGISTER_OP("ImdbRnnGruSequenceGrad")
    .Input("grad_states: float")
    .Input("states: float")
    .Input("activations: float")
    .Input("lengths: int32")
    .Input("recurrent_kernel: float")
    .Output("grad_projected: float")
    .Output("grad_inner: float")
    .SetShapeFn([](InferenceContext* c) {
      DimensionHandle units, three_units, four_units, unused;
      TF_RETURN_IF_ERROR(KernelUnits(c, 4, &units, &three_units));
      TF_RETURN_IF_ERROR(c->Multiply(units, 4, &four_units));
      ShapeHandle grad_states, states, activations, lengths;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &states));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(states, 2), units, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &grad_states));
      TF_RETURN_IF_ERROR(c->Merge(grad_states, states, &states));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &activations));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(activations, 2), four_units, &unused));
      DimensionHandle time, batch;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(states, 0), c->Dim(activations, 0), &time));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(states, 1), c->Dim(activations, 1), &batch));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &lengths));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(lengths, 0), batch, &batch));
      ShapeHandle out = c->MakeShape({time, batch, three_units});
      c->set_output(0, out);
      c->set_output(1, out);
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of ImdbRnnGruSequence.

grad_projected: gradient with respect to `projected`.
grad_inner: gradient with respect to `h_prev @ recurrent_kernel + recurrent_bias` at every
  step; the recurrent kernel's gradient is sum_t h_prev_t^T @ grad_inner_t and the recurrent
  bias's the sum of grad_inner over time and batch (one large product, outside the loop).
)doc");

class GruSequenceOp : public OpKernel {
 public:
  explicit GruSequenceOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("save_activations", &save_activations_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& lengths_tensor = context->input(1);
    const Tensor& kernel_tensor = context->input(2);
    const Tensor& bias_tensor = context->input(3);
    OP_REQUIRES_OK(context,
                   CheckInputs(projected, lengths_tensor, kernel_tensor, bias_tensor));
    const int64_t time = projected.dim_size(0);
    const int64_t batch = projected.dim_size(1);
    const int64_t units = kernel_tensor.dim_size(0);

    Tensor* states_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({time, batch, units}),
                                                     &states_tensor));
    Tensor* activations_tensor = nullptr;
    const TensorShape activations_shape =
        save_activations_ ? TensorShape({time, batch, 4 * units}) : TensorShape({0});
    OP_REQUIRES_OK(context, context->allocate_output(1, activations_shape, &activations_tensor));
    if (time == 0 || batch == 0) return;

    const int32_t* lengths = lengths_tensor.flat<int32_t>().data();
    ConstMatrixMap kernel(kernel_tensor.flat<float>().data(), units, 3 * units);
    ConstRowVectorMap bias(bias_tensor.flat<float>().data(), 3 * units);
    const float* x_data = projected.flat<float>().data();
    float* states = states_tensor->flat<float>().data();
    float* activations = save_activations_ ? activations_tensor->flat<float>().data() : nullptr;

    const bool save = save_activations_;
    // Rows are independent: each block of rows runs the whole time loop on its own.
    auto run_rows = [&](int64_t begin, int64_t end) {
      const int64_t rows = end - begin;
      const RowVector zero_state = RowVector::Zero(units);
      Matrix inner(rows, 3 * units);
      // Gates of one step when they are not kept for the gradient.
      Matrix scratch(save ? 0 : rows, 4 * units);
      for (int64_t t = 0; t < time; ++t) {
        const int64_t first = t * batch + begin;  // this block's first row at step t
        const float* h_prev = t == 0 ? nullptr : states + (first - batch) * units;
        float* h = states + first * units;
        float* gates = save ? activations + first * 4 * units : scratch.data();
        if (h_prev == nullptr) {
          inner.rowwise() = bias;
        } else {
          inner.noalias() = ConstMatrixMap(h_prev, rows, units) * kernel;
          inner.rowwise() += bias;
        }
        const float* x_t = x_data + first * 3 * units;
        for (int64_t b = 0; b < rows; ++b) {
          ArrayMap h_row(h + b * units, units);
          ConstArrayMap h_prev_row(h_prev == nullptr ? zero_state.data() : h_prev + b * units,
                                   units);
          if (t >= lengths[begin + b]) {  // past the row's end: the state is carried unchanged
            h_row = h_prev_row;
            if (save) ArrayMap(gates + b * 4 * units, 4 * units).setZero();
            continue;
          }
          ConstArrayMap x_row(x_t + b * 3 * units, 3 * units);
          ConstArrayMap inner_row(inner.data() + b * 3 * units, 3 * units);
          ArrayMap g(gates + b * 4 * units, 4 * units);  // z | r | candidate | inner_h
          g.head(2 * units) = Sigmoid(x_row.head(2 * units) + inner_row.head(2 * units));
          g.segment(2 * units, units) =
              (x_row.tail(units) + g.segment(units, units) * inner_row.tail(units)).tanh();
          g.tail(units) = inner_row.tail(units);
          h_row =
              g.head(units) * h_prev_row + (1.0f - g.head(units)) * g.segment(2 * units, units);
        }
      }
    };
    ForRowBlocks(context, batch, run_rows);
  }

 private:
  bool save_activations_ = true;
};

class GruSequenceGradOp : public OpKernel {
 public:
  explicit GruSequenceGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& grad_states_tensor = context->input(0);
    const Tensor& states_tensor = context->input(1);
    const Tensor& activations_tensor = context->input(2);
    const Tensor& lengths_tensor = context->input(3);
    const Tensor& kernel_tensor = context->input(4);
    OP_REQUIRES_OK(context, CheckGradInputs(grad_states_tensor, states_tensor, activations_tensor,
                                            lengths_tensor, kernel_tensor));
    const int64_t time = states_tensor.dim_size(0);
    const int64_t batch = states_tensor.dim_size(1);
    const int64_t units = kernel_tensor.dim_size(0);

    Tensor* grad_projected_tensor = nullptr;
    Tensor* grad_inner_tensor = nullptr;
    const TensorShape out_shape({time, batch, 3 * units});
    OP_REQUIRES_OK(context, context->allocate_output(0, out_shape, &grad_projected_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, out_shape, &grad_inner_tensor));
    if (time == 0 || batch == 0) return;

    const int32_t* lengths = lengths_tensor.flat<int32_t>().data();
    ConstMatrixMap kernel(kernel_tensor.flat<float>().data(), units, 3 * units);
    const float* grad_states = grad_states_tensor.flat<float>().data();
    const float* states = states_tensor.flat<float>().data();
    const float* activations = activations_tensor.flat<float>().data();
    float* grad_projected = grad_projected_tensor->flat<float>().data();
    float* grad_inner_all = grad_inner_tensor->flat<float>().data();

    auto run_rows = [&](int64_t begin, int64_t end) {
      const int64_t rows = end - begin;
      const RowVector zero_state = RowVector::Zero(units);
      Matrix grad_h = Matrix::Zero(rows, units);  // gradient reaching h_t from later steps
      Matrix grad_carry(rows, units);
      for (int64_t t = time - 1; t >= 0; --t) {
        const int64_t first = t * batch + begin;  // this block's first row at step t
        grad_h += ConstMatrixMap(grad_states + first * units, rows, units);
        const float* h_prev = t == 0 ? nullptr : states + (first - batch) * units;
        for (int64_t b = 0; b < rows; ++b) {
          ArrayMap grad_x(grad_projected + (first + b) * 3 * units, 3 * units);
          ArrayMap grad_inner(grad_inner_all + (first + b) * 3 * units, 3 * units);
          ArrayMap carry(grad_carry.data() + b * units, units);
          ConstArrayMap grad_h_row(grad_h.data() + b * units, units);
          if (t >= lengths[begin + b]) {
            // The step copied h_prev: the gradient passes through unchanged.
            grad_x.setZero();
            grad_inner.setZero();
            carry = grad_h_row;
            continue;
          }
          ConstArrayMap h_prev_row(h_prev == nullptr ? zero_state.data() : h_prev + b * units,
                                   units);
          ConstArrayMap g(activations + (first + b) * 4 * units, 4 * units);
          const auto z = g.head(units);
          const auto r = g.segment(units, units);
          const auto candidate = g.segment(2 * units, units);
          const auto inner_h = g.tail(units);
          // h = z * h_prev + (1 - z) * candidate; candidate = tanh(x_h + r * inner_h)
          grad_x.tail(units) = grad_h_row * (1.0f - z) * (1.0f - candidate * candidate);
          grad_x.head(units) = grad_h_row * (h_prev_row - candidate) * z * (1.0f - z);
          grad_x.segment(units, units) = grad_x.tail(units) * inner_h * r * (1.0f - r);
          grad_inner.head(2 * units) = grad_x.head(2 * units);
          grad_inner.tail(units) = grad_x.tail(units) * r;
          carry = grad_h_row * z;
        }
        grad_h.noalias() = grad_carry;
        grad_h.noalias() +=
            ConstMatrixMap(grad_inner_all + first * 3 * units, rows, 3 * units) *
            kernel.transpose();
      }
    };
    ForRowBlocks(context, batch, run_rows);
  }
};

REGISTER_KERNEL_BUILDER(Name("ImdbRnnGruSequence").Device(DEVICE_CPU), GruSequenceOp);
REGISTER_KERNEL_BUILDER(Name("ImdbRnnGruSequenceGrad").Device(DEVICE_CPU), GruSequenceGradOp);
