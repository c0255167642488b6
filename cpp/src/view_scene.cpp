// view_scene (innout.h): a RenderScene of host pointers into a Scene read from a file, with the
// planes converted to the channels-last layout the renderer reads. A Scene may also be built by
// hand, so every tensor the view points into is checked first.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "innout/innout.h"
#include "innout/validate.h"

namespace innout {
namespace {

// Whether `scene` has tensor `name` with `dims` dimensions (a dimension < 0 in `sizes` is free)
// and data for every element: view_scene relies on it, and a Scene may be built by hand.
Status check_tensor(const Scene& scene, const std::string& name, std::vector<int64_t> sizes) {
  const SceneTensor* t = scene.find(name);
  bool ok = t != nullptr && t->shape.size() == sizes.size();
  for (size_t i = 0; ok && i < sizes.size(); ++i) {
    ok = t->shape[i] > 0 && (sizes[i] < 0 || t->shape[i] == sizes[i]);
  }
  // numel() saturates instead of overflowing, and no vector holds INT64_MAX floats, so a hand-built
  // shape whose product passes int64 is refused here rather than wrapping around.
  ok = ok && t->numel() < std::numeric_limits<int64_t>::max() &&
       static_cast<int64_t>(t->data.size()) == t->numel();
  std::string expected;
  for (int64_t size : sizes)
    expected +=
        (expected.empty() ? "" : ", ") + (size < 0 ? std::string("n") : std::to_string(size));
  return require(ok, "view_scene", "tensor " + name + " of shape [" + expected + "]");
}

Status check_decoder_tensors(const Scene& scene, const std::string& prefix) {
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, prefix + ".hidden.weight", {-1, -1}));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, prefix + ".output.weight",
                                      {-1, scene.find(prefix + ".hidden.weight")->shape[0]}));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, prefix + ".hidden.bias",
                                      {scene.find(prefix + ".hidden.weight")->shape[0]}));
  return check_tensor(scene, prefix + ".output.bias",
                      {scene.find(prefix + ".output.weight")->shape[0]});
}

}  // namespace

Status view_scene(const Scene& scene, SceneStorage* storage, RenderScene* view,
                  CameraLabel* camera) {
  const std::string op = "view_scene";
  INNOUT_RETURN_IF_ERROR(require(storage != nullptr && view != nullptr && camera != nullptr, op,
                                 "storage, view and camera pointers"));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, "camera", {25}));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, "face.planes", {3, -1, -1, -1}));
  INNOUT_RETURN_IF_ERROR(check_decoder_tensors(scene, "face"));
  if (scene.has_object()) {
    INNOUT_RETURN_IF_ERROR(check_tensor(scene, "object.planes", {3, -1, -1, -1}));
    INNOUT_RETURN_IF_ERROR(check_tensor(scene, "object.code", {-1}));
    INNOUT_RETURN_IF_ERROR(check_decoder_tensors(scene, "object"));
  }
  const SceneTensor* planes = scene.find("face.planes");
  const SceneTensor* label = scene.find("camera");
  const auto channels_last = [](const SceneTensor& t, std::vector<float>* out, TriPlaneView* v) {
    const int64_t C = t.shape[1], H = t.shape[2], W = t.shape[3];
    out->assign(t.data.size(), 0.0f);
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t x = 0; x < W; ++x)
            (*out)[((k * H + y) * W + x) * C + c] = t.data[((k * C + c) * H + y) * W + x];
    *v = TriPlaneView{out->data(), C, H, W};
  };
  const auto decoder = [&scene](const std::string& prefix) {
    const SceneTensor& hidden = *scene.find(prefix + ".hidden.weight");
    const SceneTensor& output = *scene.find(prefix + ".output.weight");
    DecoderView d;
    d.hidden_weight = hidden.data.data();
    d.hidden_bias = scene.find(prefix + ".hidden.bias")->data.data();
    d.output_weight = output.data.data();
    d.output_bias = scene.find(prefix + ".output.bias")->data.data();
    d.hidden = hidden.shape[0];
    d.inputs = hidden.shape[1];
    d.outputs = output.shape[0];
    return d;
  };
  RenderScene v;
  channels_last(*planes, &storage->face_planes, &v.face_planes);
  v.face_decoder = decoder("face");
  if (scene.has_object()) {
    channels_last(*scene.find("object.planes"), &storage->object_planes, &v.object_planes);
    v.object_decoder = decoder("object");
    const SceneTensor& code = *scene.find("object.code");
    v.object_code = code.data.data();
    v.object_code_size = code.numel();
  } else {
    storage->object_planes.clear();
  }
  v.coarse_samples = scene.coarse_samples;
  v.fine_samples = scene.fine_samples;
  v.ray_start = scene.ray_start;
  v.ray_end = scene.ray_end;
  v.box_warp = scene.box_warp;
  v.sigmoid_pad = scene.sigmoid_pad;
  *view = v;
  for (int i = 0; i < 25; ++i) camera->values[i] = label->data[i];
  return Status::Ok();
}

}  // namespace innout
