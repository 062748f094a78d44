// An emulated cuDNN: the part of cuDNN's convolution API that
// kernels/cuda/conv.cu calls, on the CPU, so that its glue (descriptors,
// layouts, the algorithm choice, workspaces, the plan cache, the blend into a
// waiting gradient) runs on machines without a GPU. Included before
// kernels/cuda/conv.cu in the emulated build (emulated/conv_kernels.cpp).
// Also the legacy batch-norm functions and the graph API's names that
// apps/probe_cudnn_fusion.cpp calls (further below).
//
// What it does as cuDNN does:
//   - reads and writes the buffers as the descriptors say (NCHW or NHWC
//     activations, KCRS or KRSC filters; packed), so a descriptor that does
//     not match the tensor's layout gives wrong values;
//   - refuses what cuDNN refuses: a handle cudnnCreate did not make,
//     descriptors whose types, channels or output sizes disagree, a compute
//     type other than float (float32, bfloat16 data) or double, a workspace
//     smaller than the algorithm needs (and writes over the whole workspace
//     it is given, so one too short for its claimed size shows under
//     AddressSanitizer); and an algorithm of tensor-op math run under a
//     descriptor set to CUDNN_FMA_MATH;
//   - float32 data under any math type but CUDNN_FMA_MATH is computed as
//     TF32 tensor cores would (inputs rounded to a 10-bit mantissa), as
//     CUDNN_DEFAULT_MATH permits on Ampere and later;
//   - y = alpha * op(...) + beta * y, in the scaling factors' type;
//   - each pass offers five algorithms: ranked one way by the heuristics
//     (cudnnGet..._v7) and another by the timed search (cudnnFind...Ex),
//     which reads the pass's inputs, runs each algorithm that fits the
//     workspace given and so overwrites the output buffer; one needs more workspace than lrt allows, one is not
//     supported, one is nondeterministic, one uses tensor-op math and a
//     workspace, one neither.
// Every algorithm computes the same values: each output summed in double
// from the inputs as stored, rounded once to the output's type. Only
// cross-correlation (CUDNN_CROSS_CORRELATION, what lrt uses) is emulated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "emulated/runtime.h"

enum cudnnStatus_t {
  CUDNN_STATUS_SUCCESS = 0,
  CUDNN_STATUS_NOT_INITIALIZED = 1001,
  CUDNN_STATUS_ALLOC_FAILED = 1002,
  CUDNN_STATUS_BAD_PARAM = 2000,
  CUDNN_STATUS_NOT_SUPPORTED = 3000,
  CUDNN_STATUS_EXECUTION_FAILED = 5000,
};
enum cudnnDataType_t { CUDNN_DATA_FLOAT = 0, CUDNN_DATA_DOUBLE = 1, CUDNN_DATA_HALF = 2, CUDNN_DATA_BFLOAT16 = 9 };
enum cudnnMathType_t {
  CUDNN_DEFAULT_MATH = 0,
  CUDNN_TENSOR_OP_MATH = 1,
  CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
  CUDNN_FMA_MATH = 3,
};
enum cudnnTensorFormat_t { CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1 };
enum cudnnConvolutionMode_t { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 };
enum cudnnDeterminism_t { CUDNN_NON_DETERMINISTIC = 0, CUDNN_DETERMINISTIC = 1 };
enum cudnnConvolutionFwdAlgo_t : int {};
enum cudnnConvolutionBwdDataAlgo_t : int {};
enum cudnnConvolutionBwdFilterAlgo_t : int {};

template <class Algo>
struct cudnnEmulatedAlgoPerf {
  Algo algo;
  cudnnStatus_t status;
  float time;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t mathType;
  int reserved[3];
};
using cudnnConvolutionFwdAlgoPerf_t = cudnnEmulatedAlgoPerf<cudnnConvolutionFwdAlgo_t>;
using cudnnConvolutionBwdDataAlgoPerf_t = cudnnEmulatedAlgoPerf<cudnnConvolutionBwdDataAlgo_t>;
using cudnnConvolutionBwdFilterAlgoPerf_t = cudnnEmulatedAlgoPerf<cudnnConvolutionBwdFilterAlgo_t>;

struct cudnnEmulatedContext;
struct cudnnEmulatedTensor;
struct cudnnEmulatedFilter;
struct cudnnEmulatedConvolution;
using cudnnHandle_t = cudnnEmulatedContext*;
using cudnnTensorDescriptor_t = cudnnEmulatedTensor*;
using cudnnFilterDescriptor_t = cudnnEmulatedFilter*;
using cudnnConvolutionDescriptor_t = cudnnEmulatedConvolution*;

const char* cudnnGetErrorString(cudnnStatus_t status);
size_t cudnnGetVersion();
cudnnStatus_t cudnnCreate(cudnnHandle_t* handle);
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle);
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream);

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d);
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d);
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t type,
                                         int n, int c, int h, int w);
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d);
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d);
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int r, int s);
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d);
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d);
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int stride_h,
                                              int stride_w, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute_type);
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math);

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t h, int* count);
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                     cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                     cudnnTensorDescriptor_t y, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf);
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t h, cudnnTensorDescriptor_t x, const void* xp,
                                                     cudnnFilterDescriptor_t w, const void* wp,
                                                     cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y,
                                                     void* yp, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, size_t ws_bytes);
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                      cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                      cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes);
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x, const void* xp,
                                      cudnnFilterDescriptor_t w, const void* wp, cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t algo, void* ws, size_t ws_bytes, const void* beta,
                                      cudnnTensorDescriptor_t y, void* yp);

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t h, int* count);
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                          cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t conv,
                                                          cudnnTensorDescriptor_t dx, int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf);
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t h, cudnnFilterDescriptor_t w, const void* wp,
                                                          cudnnTensorDescriptor_t dy, const void* dyp,
                                                          cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx,
                                                          void* dxp, int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws,
                                                          size_t ws_bytes);
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                           cudnnTensorDescriptor_t dy,
                                                           cudnnConvolutionDescriptor_t conv,
                                                           cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes);
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, cudnnFilterDescriptor_t w,
                                           const void* wp, cudnnTensorDescriptor_t dy, const void* dyp,
                                           cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta, cudnnTensorDescriptor_t dx,
                                           void* dxp);

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t h, int* count);
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                            cudnnTensorDescriptor_t dy,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnFilterDescriptor_t dw, int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf);
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t h, cudnnTensorDescriptor_t x, const void* xp,
                                                            cudnnTensorDescriptor_t dy, const void* dyp,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnFilterDescriptor_t dw, void* dwp, int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf,
                                                            void* ws, size_t ws_bytes);
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                             cudnnTensorDescriptor_t dy,
                                                             cudnnConvolutionDescriptor_t conv,
                                                             cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes);
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x,
                                             const void* xp, cudnnTensorDescriptor_t dy, const void* dyp,
                                             cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t algo,
                                             void* ws, size_t ws_bytes, const void* beta, cudnnFilterDescriptor_t dw,
                                             void* dwp);

// y = alpha * b + beta * y, b broadcast over y's dimensions where it has 1.
cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t b, const void* bp,
                             const void* beta, cudnnTensorDescriptor_t y, void* yp);

// ---- the legacy batch-norm API (cudnn_ops' training *Ex functions) ----
// What apps/probe_cudnn_fusion.cpp calls to time cuDNN's own batch norm
// (the kernels PyTorch's cuDNN batch norm runs) against lrt's. Emulated:
//   - the per-channel modes (CUDNN_BATCHNORM_SPATIAL and _PERSISTENT,
//     computed alike); CUDNN_BATCHNORM_PER_ACTIVATION is refused;
//   - each channel's mean and biased variance summed in double over the
//     values as stored; the saved inverse variance 1 / sqrt(var + eps); the
//     running mean and variance updated with the factor given, the variance
//     unbiased; every output rounded once to its type;
//   - forward: y = alpha * act(bn(x) [+ z]) + beta * y, act a ReLU or none
//     by the ops; the ReLU's mask kept in the reserve space, one bit an
//     element in NCHW order, which the backward reads (so a reserve space
//     that is not the forward's gives wrong gradients);
//   - backward: the gradient masked by that ReLU; dz (the residual's
//     gradient, the ops with an add) is the masked gradient, dx the batch
//     norm's input gradient, both blended with the data factors; dscale and
//     dbias blended with the parameter factors; the saved mean and inverse
//     variance used where given (both or neither), else recomputed from x;
//   - the fused ops (ReLU, add) refused with CUDNN_STATUS_NOT_SUPPORTED but
//     for NHWC data in the persistent mode, the add with C a multiple of 4,
//     as cuDNN documents them (it also documents them for float16 data
//     only; the emulator takes bfloat16 and float32 too, so that lrt's path
//     for them runs here);
//   - the workspace sizes: the forward's two doubles a channel, the
//     backward's none (as a real cuDNN may answer for a case); an *Ex call
//     given a null workspace of 0 bytes runs as the plain function, its ops
//     ignored (no ReLU, no add, no mask, dz not written), as cuDNN documents:
//     so a fused call must always be given a workspace;
//   - refused as cuDNN refuses: a bad handle, a null or unset descriptor,
//     activations of different shapes or types, a per-channel descriptor
//     other than (1, C, 1, 1) of float (double for double data), an
//     activation op without a ReLU descriptor or without z where it adds, a
//     negative epsilon, a reserve space or workspace smaller than the size
//     the query gives (each written over in full, so a short one shows under
//     AddressSanitizer).
enum cudnnBatchNormMode_t {
  CUDNN_BATCHNORM_PER_ACTIVATION = 0,
  CUDNN_BATCHNORM_SPATIAL = 1,
  CUDNN_BATCHNORM_SPATIAL_PERSISTENT = 2
};
enum cudnnBatchNormOps_t {
  CUDNN_BATCHNORM_OPS_BN = 0,
  CUDNN_BATCHNORM_OPS_BN_ACTIVATION = 1,
  CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION = 2
};
enum cudnnActivationMode_t { CUDNN_ACTIVATION_SIGMOID = 0, CUDNN_ACTIVATION_RELU = 1 };
enum cudnnNanPropagation_t { CUDNN_NOT_PROPAGATE_NAN = 0, CUDNN_PROPAGATE_NAN = 1 };
struct cudnnEmulatedActivation;
using cudnnActivationDescriptor_t = cudnnEmulatedActivation*;

cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t* d);
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d, cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t nan, double coef);
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d);
cudnnStatus_t cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops, cudnnTensorDescriptor_t x,
    cudnnTensorDescriptor_t z, cudnnTensorDescriptor_t y, cudnnTensorDescriptor_t param,
    cudnnActivationDescriptor_t act, size_t* bytes);
cudnnStatus_t cudnnGetBatchNormalizationBackwardExWorkspaceSize(cudnnHandle_t h, cudnnBatchNormMode_t mode,
                                                                cudnnBatchNormOps_t ops, cudnnTensorDescriptor_t x,
                                                                cudnnTensorDescriptor_t y, cudnnTensorDescriptor_t dy,
                                                                cudnnTensorDescriptor_t dz, cudnnTensorDescriptor_t dx,
                                                                cudnnTensorDescriptor_t dparam,
                                                                cudnnActivationDescriptor_t act, size_t* bytes);
cudnnStatus_t cudnnGetBatchNormalizationTrainingExReserveSpaceSize(cudnnHandle_t h, cudnnBatchNormMode_t mode,
                                                                   cudnnBatchNormOps_t ops,
                                                                   cudnnActivationDescriptor_t act,
                                                                   cudnnTensorDescriptor_t x, size_t* bytes);
cudnnStatus_t cudnnBatchNormalizationForwardTrainingEx(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops, const void* alpha, const void* beta,
    cudnnTensorDescriptor_t x, const void* xp, cudnnTensorDescriptor_t z, const void* zp, cudnnTensorDescriptor_t y,
    void* yp, cudnnTensorDescriptor_t param, const void* scale, const void* bias, double factor, void* running_mean,
    void* running_var, double eps, void* save_mean, void* save_invvar, cudnnActivationDescriptor_t act, void* ws,
    size_t ws_bytes, void* reserve, size_t reserve_bytes);
cudnnStatus_t cudnnBatchNormalizationBackwardEx(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops, const void* alpha_data, const void* beta_data,
    const void* alpha_param, const void* beta_param, cudnnTensorDescriptor_t x, const void* xp,
    cudnnTensorDescriptor_t y, const void* yp, cudnnTensorDescriptor_t dy, const void* dyp, cudnnTensorDescriptor_t dz,
    void* dzp, cudnnTensorDescriptor_t dx, void* dxp, cudnnTensorDescriptor_t dparam, const void* scale,
    const void* bias, void* dscale, void* dbias, double eps, const void* saved_mean, const void* saved_invvar,
    cudnnActivationDescriptor_t act, void* ws, size_t ws_bytes, void* reserve, size_t reserve_bytes);

// ---- the backend (graph) API: declared, not emulated ----
// What apps/probe_cudnn_fusion.cpp names of cuDNN's graph API (the values
// are cuDNN 9's), so that the probe builds over the emulator and its own
// path (lrt's passes, its output) runs on the CPU. Creating a descriptor is
// refused with CUDNN_STATUS_NOT_SUPPORTED, as by a cuDNN whose graph
// engines are missing; the other calls are never reached and refuse too.
enum cudnnReduceTensorOp_t { CUDNN_REDUCE_TENSOR_ADD = 0 };
enum cudnnPointwiseMode_t {
  CUDNN_POINTWISE_ADD = 0,
  CUDNN_POINTWISE_MUL = 1,
  CUDNN_POINTWISE_SUB = 9,
  CUDNN_POINTWISE_RELU_FWD = 100,
  CUDNN_POINTWISE_RELU_BWD = 200
};
enum cudnnGenStatsMode_t { CUDNN_GENSTATS_SUM_SQSUM = 0 };
enum cudnnBackendAttributeName_t {
  CUDNN_ATTR_POINTWISE_MODE = 0,
  CUDNN_ATTR_POINTWISE_MATH_PREC = 1,
  CUDNN_ATTR_CONVOLUTION_COMP_TYPE = 100,
  CUDNN_ATTR_CONVOLUTION_CONV_MODE = 101,
  CUDNN_ATTR_CONVOLUTION_DILATIONS = 102,
  CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES = 103,
  CUDNN_ATTR_CONVOLUTION_POST_PADDINGS = 104,
  CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS = 105,
  CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS = 106,
  CUDNN_ATTR_ENGINEHEUR_MODE = 200,
  CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH = 201,
  CUDNN_ATTR_ENGINEHEUR_RESULTS = 202,
  CUDNN_ATTR_ENGINECFG_ENGINE = 300,
  CUDNN_ATTR_EXECUTION_PLAN_HANDLE = 400,
  CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG = 401,
  CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE = 402,
  CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA = 700,
  CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA = 701,
  CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC = 702,
  CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W = 703,
  CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X = 704,
  CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y = 705,
  CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR = 750,
  CUDNN_ATTR_OPERATION_POINTWISE_XDESC = 751,
  CUDNN_ATTR_OPERATION_POINTWISE_BDESC = 752,
  CUDNN_ATTR_OPERATION_POINTWISE_YDESC = 753,
  CUDNN_ATTR_OPERATION_POINTWISE_DXDESC = 756,
  CUDNN_ATTR_OPERATION_POINTWISE_DYDESC = 757,
  CUDNN_ATTR_OPERATION_GENSTATS_MODE = 770,
  CUDNN_ATTR_OPERATION_GENSTATS_MATH_PREC = 771,
  CUDNN_ATTR_OPERATION_GENSTATS_XDESC = 772,
  CUDNN_ATTR_OPERATION_GENSTATS_SUMDESC = 773,
  CUDNN_ATTR_OPERATION_GENSTATS_SQSUMDESC = 774,
  CUDNN_ATTR_OPERATIONGRAPH_HANDLE = 800,
  CUDNN_ATTR_OPERATIONGRAPH_OPS = 801,
  CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT = 900,
  CUDNN_ATTR_TENSOR_DATA_TYPE = 901,
  CUDNN_ATTR_TENSOR_DIMENSIONS = 902,
  CUDNN_ATTR_TENSOR_STRIDES = 903,
  CUDNN_ATTR_TENSOR_UNIQUE_ID = 906,
  CUDNN_ATTR_TENSOR_IS_VIRTUAL = 907,
  CUDNN_ATTR_TENSOR_IS_BY_VALUE = 908,
  CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS = 1000,
  CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS = 1001,
  CUDNN_ATTR_VARIANT_PACK_WORKSPACE = 1003,
  CUDNN_ATTR_ENGINE_GLOBAL_INDEX = 1301,
  CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE = 1305,
  CUDNN_ATTR_REDUCTION_OPERATOR = 1600,
  CUDNN_ATTR_REDUCTION_COMP_TYPE = 1601,
  CUDNN_ATTR_OPERATION_REDUCTION_XDESC = 1610,
  CUDNN_ATTR_OPERATION_REDUCTION_YDESC = 1611,
  CUDNN_ATTR_OPERATION_REDUCTION_DESC = 1612,
  CUDNN_ATTR_OPERATION_NORM_FWD_MODE = 2000,
  CUDNN_ATTR_OPERATION_NORM_FWD_PHASE = 2001,
  CUDNN_ATTR_OPERATION_NORM_FWD_XDESC = 2002,
  CUDNN_ATTR_OPERATION_NORM_FWD_MEAN_DESC = 2003,
  CUDNN_ATTR_OPERATION_NORM_FWD_INV_VARIANCE_DESC = 2004,
  CUDNN_ATTR_OPERATION_NORM_FWD_SCALE_DESC = 2005,
  CUDNN_ATTR_OPERATION_NORM_FWD_BIAS_DESC = 2006,
  CUDNN_ATTR_OPERATION_NORM_FWD_EPSILON_DESC = 2007,
  CUDNN_ATTR_OPERATION_NORM_FWD_EXP_AVG_FACTOR_DESC = 2008,
  CUDNN_ATTR_OPERATION_NORM_FWD_INPUT_RUNNING_MEAN_DESC = 2009,
  CUDNN_ATTR_OPERATION_NORM_FWD_INPUT_RUNNING_VAR_DESC = 2010,
  CUDNN_ATTR_OPERATION_NORM_FWD_OUTPUT_RUNNING_MEAN_DESC = 2011,
  CUDNN_ATTR_OPERATION_NORM_FWD_OUTPUT_RUNNING_VAR_DESC = 2012,
  CUDNN_ATTR_OPERATION_NORM_FWD_YDESC = 2013,
  CUDNN_ATTR_OPERATION_NORM_BWD_MODE = 2100,
  CUDNN_ATTR_OPERATION_NORM_BWD_XDESC = 2101,
  CUDNN_ATTR_OPERATION_NORM_BWD_MEAN_DESC = 2102,
  CUDNN_ATTR_OPERATION_NORM_BWD_INV_VARIANCE_DESC = 2103,
  CUDNN_ATTR_OPERATION_NORM_BWD_DYDESC = 2104,
  CUDNN_ATTR_OPERATION_NORM_BWD_SCALE_DESC = 2105,
  CUDNN_ATTR_OPERATION_NORM_BWD_DSCALE_DESC = 2107,
  CUDNN_ATTR_OPERATION_NORM_BWD_DBIAS_DESC = 2108,
  CUDNN_ATTR_OPERATION_NORM_BWD_DXDESC = 2109
};
enum cudnnBackendAttributeType_t {
  CUDNN_TYPE_HANDLE = 0,
  CUDNN_TYPE_DATA_TYPE = 1,
  CUDNN_TYPE_BOOLEAN = 2,
  CUDNN_TYPE_INT64 = 3,
  CUDNN_TYPE_FLOAT = 4,
  CUDNN_TYPE_VOID_PTR = 6,
  CUDNN_TYPE_CONVOLUTION_MODE = 7,
  CUDNN_TYPE_HEUR_MODE = 8,
  CUDNN_TYPE_POINTWISE_MODE = 14,
  CUDNN_TYPE_BACKEND_DESCRIPTOR = 15,
  CUDNN_TYPE_GENSTATS_MODE = 16,
  CUDNN_TYPE_REDUCTION_OPERATOR_TYPE = 18,
  CUDNN_TYPE_BEHAVIOR_NOTE = 19,
  CUDNN_TYPE_NORM_MODE = 27,
  CUDNN_TYPE_NORM_FWD_PHASE = 28
};
enum cudnnBackendDescriptorType_t {
  CUDNN_BACKEND_POINTWISE_DESCRIPTOR = 0,
  CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR = 1,
  CUDNN_BACKEND_ENGINE_DESCRIPTOR = 2,
  CUDNN_BACKEND_ENGINECFG_DESCRIPTOR = 3,
  CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR = 4,
  CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR = 5,
  CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR = 10,
  CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR = 13,
  CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR = 14,
  CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR = 15,
  CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR = 16,
  CUDNN_BACKEND_TENSOR_DESCRIPTOR = 17,
  CUDNN_BACKEND_REDUCTION_DESCRIPTOR = 21,
  CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR = 22,
  CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR = 29,
  CUDNN_BACKEND_OPERATION_NORM_BACKWARD_DESCRIPTOR = 30
};
enum cudnnBackendBehaviorNote_t { CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION = 0, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT = 5 };
enum cudnnBackendHeurMode_t { CUDNN_HEUR_MODE_FALLBACK = 2, CUDNN_HEUR_MODE_A = 3 };
enum cudnnBackendNormMode_t { CUDNN_BATCH_NORM = 2 };
enum cudnnBackendNormFwdPhase_t { CUDNN_NORM_FWD_INFERENCE = 0, CUDNN_NORM_FWD_TRAINING = 1 };
struct cudnnEmulatedBackendDescriptor;
using cudnnBackendDescriptor_t = cudnnEmulatedBackendDescriptor*;

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t* d);
cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t d);
cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count, const void* values);
cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested, int64_t* count,
                                       void* values);
cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t d);
cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack);
// The emulator's reason for the last failure, as cuDNN's message.
void cudnnGetLastErrorString(char* message, size_t max_size);

// The status with the emulator's reason for the last failure: the check of
// the kernel files built alone (emulated/conv_kernels.cpp); the library
// built over the emulator (LRT_EMULATED_CUDA) uses core/cuda_check.h's.
#if defined(LRT_EMULATED_GRID)
#define CUDNN_CHECK(expr)                                                                                         \
  do {                                                                                                            \
    const cudnnStatus_t lrt_cudnn_status_ = (expr);                                                               \
    LRT_CHECK(lrt_cudnn_status_ == CUDNN_STATUS_SUCCESS, "emulated cuDNN: ", #expr,                               \
              " failed: ", cudnnGetErrorString(lrt_cudnn_status_), " (", lrt::emulated_cudnn::last_error(), ")"); \
  } while (0)
#endif

namespace lrt::emulated_cudnn {

// Why the last call that failed did.
std::string last_error();

// The emulator's record, for tests: each pass run (not the search's runs),
// each search, the tensor descriptors made, and the legacy batch norm's size
// queries and runs.
enum class Pass { Forward, BackwardData, BackwardFilter };
struct Run {
  Pass pass;
  int algo;
  cudnnMathType_t math;
  size_t workspace;  // bytes given
  double beta;
};
struct Record {
  std::vector<Run> runs;
  int searches = 0;    // cudnnFind...Ex calls
  int heuristics = 0;  // cudnnGet..._v7 calls
  const void* search_output = nullptr;  // the output buffer the last search wrote
  int tensor_descriptors = 0;  // cudnnCreateTensorDescriptor calls
  int bn_size_queries = 0;     // cudnnGetBatchNormalization...Size calls
  int bn_runs = 0;             // cudnnBatchNormalization{ForwardTrainingEx,BackwardEx} calls that ran
};
Record& record();

// The algorithms' properties, as both rankings report them (for tests).
constexpr int kAlgos = 5;
constexpr int kHugeAlgo = 3;         // needs 2 GiB of workspace
constexpr int kUnsupportedAlgo = 4;  // CUDNN_STATUS_NOT_SUPPORTED
constexpr int kNondeterministicAlgo = 2;
constexpr int kTensorOpAlgo = 1;  // tensor-op math, a workspace
constexpr int kPlainAlgo = 0;     // FMA math (DEFAULT for bfloat16), no workspace

}  // namespace lrt::emulated_cudnn
