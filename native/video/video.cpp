// libllvideo: decodes the frames a training clip needs, in process, with FFmpeg's libraries (libavformat,
// libavcodec, libswscale). Separate from the libtorch shim: the data workers load it (Deno.dlopen with
// nonblocking calls, so N clips decode at once on N threads) and never load libtorch.
//
// One error convention: every entry point returns a status (>= 0 success, -1 failure) and, on failure, writes
// a NUL-terminated message into the caller's `err` buffer (calls run concurrently on several threads, so there
// is no global "last error").
//
// Frame numbering: frame k of a stream is the one whose presentation time is start + k / fps (fps = the
// stream's average frame rate), so indices mean the same for ffprobe, the ffmpeg CLI and this decoder.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#define LLV_API extern "C" __attribute__((visibility("default")))

namespace {

void fail(char* err, int errlen, const std::string& msg) {
  if (err == nullptr || errlen <= 0) return;
  std::snprintf(err, static_cast<size_t>(errlen), "%s", msg.c_str());
}

std::string av_err(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// Owns what one call opens; closes it on every path.
struct Input {
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  SwsContext* sws = nullptr;
  int stream = -1;
  ~Input() {
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }
};

double rational(AVRational r) { return r.den != 0 ? static_cast<double>(r.num) / r.den : 0.0; }

// Opens `path`, finds its first video stream and (when `decoder`) opens a decoder on `threads` threads.
bool open_input(Input& in, const char* path, bool decoder, int threads, char* err, int errlen) {
  int rc = avformat_open_input(&in.fmt, path, nullptr, nullptr);
  if (rc < 0) return fail(err, errlen, "cannot open: " + av_err(rc)), false;
  rc = avformat_find_stream_info(in.fmt, nullptr);
  if (rc < 0) return fail(err, errlen, "cannot read stream information: " + av_err(rc)), false;
  const AVCodec* codec = nullptr;
  in.stream = av_find_best_stream(in.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (in.stream < 0) return fail(err, errlen, "has no video stream"), false;
  if (!decoder) return true;
  if (codec == nullptr) return fail(err, errlen, "no decoder for its video codec"), false;
  in.dec = avcodec_alloc_context3(codec);
  if (in.dec == nullptr) return fail(err, errlen, "out of memory"), false;
  rc = avcodec_parameters_to_context(in.dec, in.fmt->streams[in.stream]->codecpar);
  if (rc < 0) return fail(err, errlen, "bad codec parameters: " + av_err(rc)), false;
  in.dec->thread_count = threads > 0 ? threads : 1;
  rc = avcodec_open2(in.dec, codec, nullptr);
  if (rc < 0) return fail(err, errlen, "cannot open the decoder: " + av_err(rc)), false;
  in.frame = av_frame_alloc();
  in.pkt = av_packet_alloc();
  if (in.frame == nullptr || in.pkt == nullptr) return fail(err, errlen, "out of memory"), false;
  return true;
}

// The stream's frame rate: the average rate, else the real base rate, else the codec's.
double stream_fps(const AVStream* s) {
  double fps = rational(s->avg_frame_rate);
  if (!(fps > 0) || !std::isfinite(fps)) fps = rational(s->r_frame_rate);
  return fps;
}

}  // namespace

// What a file holds: info[0..6] = width, height, fps, frame count (the container's, else duration × fps),
// duration in seconds, start time in seconds, and 1 when the frame count is the container's exact one.
LLV_API int llv_probe(const char* path, double* info, char* err, int errlen) {
  Input in;
  if (!open_input(in, path, false, 1, err, errlen)) return -1;
  const AVStream* s = in.fmt->streams[in.stream];
  const double fps = stream_fps(s), tb = rational(s->time_base);
  double duration = s->duration != AV_NOPTS_VALUE ? s->duration * tb : 0.0;
  if (!(duration > 0) && in.fmt->duration != AV_NOPTS_VALUE) {
    duration = static_cast<double>(in.fmt->duration) / AV_TIME_BASE;
  }
  const double start = s->start_time != AV_NOPTS_VALUE ? s->start_time * tb : 0.0;
  const bool exact = s->nb_frames > 0;
  const double frames = exact ? static_cast<double>(s->nb_frames) : std::floor(duration * fps + 0.5);
  if (!(fps > 0) || !(duration > 0) || !(frames >= 1)) {
    return fail(err, errlen, "reports no usable frame rate, duration or frame count"), -1;
  }
  info[0] = s->codecpar->width;
  info[1] = s->codecpar->height;
  info[2] = fps;
  info[3] = frames;
  info[4] = duration;
  info[5] = start;
  info[6] = exact ? 1 : 0;
  return 0;
}

// Decodes the frames at `index[0..n)` (non-decreasing source frame indices; repeats allowed), crops each to
// the rectangle (cx, cy, cw, ch) of the source frame, scales it to out_w × out_h (bilinear), mirrors it when
// `flip`, and writes RGB24 frames one after the other into `out` (n × out_h × out_w × 3 bytes). It seeks to
// the keyframe before index[0] and decodes forward, converting only the frames asked for. An index that has no
// frame of its own (a gap in the timestamps) takes the next frame; indices past the end take the last frame
// decoded. Returns the number of frames that had a frame of their own (≥ 1), or -1 with a message in `err`.
LLV_API int llv_decode(const char* path, const int64_t* index, int n, int cx, int cy, int cw, int ch, int out_w,
                       int out_h, int flip, int threads, uint8_t* out, char* err, int errlen) {
  if (n < 1 || out_w < 1 || out_h < 1 || cw < 1 || ch < 1 || cx < 0 || cy < 0) {
    return fail(err, errlen, "bad decode request (sizes must be positive)"), -1;
  }
  for (int i = 1; i < n; i++) {
    if (index[i] < index[i - 1]) return fail(err, errlen, "frame indices must be non-decreasing"), -1;
  }
  Input in;
  if (!open_input(in, path, true, threads, err, errlen)) return -1;
  AVStream* s = in.fmt->streams[in.stream];
  const double fps = stream_fps(s), tb = rational(s->time_base);
  if (!(fps > 0) || !(tb > 0)) return fail(err, errlen, "reports no usable frame rate"), -1;
  const int64_t start_pts = s->start_time != AV_NOPTS_VALUE ? s->start_time : 0;
  const size_t frame_bytes = static_cast<size_t>(out_w) * out_h * 3;

  AVFrame* last = av_frame_alloc();  // the newest frame decoded and not emitted (stands in past the end)
  struct FreeLast {
    AVFrame** f;
    ~FreeLast() { av_frame_free(f); }
  } free_last{&last};
  if (last == nullptr) return fail(err, errlen, "out of memory"), -1;
  bool last_held = false;
  int k = 0;          // next output slot
  int own = 0;        // slots filled by a frame of their own index
  bool any = false;   // a frame has been decoded
  int64_t last_idx = -1;

  auto emit = [&](AVFrame* f, int64_t idx) -> bool {
    if (cx + cw > f->width || cy + ch > f->height) {
      fail(err, errlen, "crop " + std::to_string(cw) + "x" + std::to_string(ch) + "+" + std::to_string(cx) + "+" +
                            std::to_string(cy) + " is outside the " + std::to_string(f->width) + "x" +
                            std::to_string(f->height) + " frame");
      return false;
    }
    f->crop_left = static_cast<size_t>(cx);
    f->crop_top = static_cast<size_t>(cy);
    f->crop_right = static_cast<size_t>(f->width - cx - cw);
    f->crop_bottom = static_cast<size_t>(f->height - cy - ch);
    int rc = av_frame_apply_cropping(f, AV_FRAME_CROP_UNALIGNED);
    if (rc < 0) return fail(err, errlen, "cannot crop: " + av_err(rc)), false;
    in.sws = sws_getCachedContext(in.sws, f->width, f->height, static_cast<AVPixelFormat>(f->format), out_w, out_h,
                                  AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr);
    if (in.sws == nullptr) return fail(err, errlen, "cannot convert its pixel format"), false;
    uint8_t* first = out + static_cast<size_t>(k) * frame_bytes;
    uint8_t* dst[4] = {first, nullptr, nullptr, nullptr};
    int dst_stride[4] = {out_w * 3, 0, 0, 0};
    sws_scale(in.sws, f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (flip) {
      for (int y = 0; y < out_h; y++) {
        uint8_t* row = first + static_cast<size_t>(y) * out_w * 3;
        for (int a = 0, b = out_w - 1; a < b; a++, b--) {
          for (int c = 0; c < 3; c++) std::swap(row[a * 3 + c], row[b * 3 + c]);
        }
      }
    }
    if (index[k] == idx) own++;
    k++;
    while (k < n && index[k] <= idx) {  // repeated indices, and indices skipped by a gap in the timestamps
      std::memcpy(out + static_cast<size_t>(k) * frame_bytes, first, frame_bytes);
      if (index[k] == idx) own++;
      k++;
    }
    return true;
  };

  // Seek to the keyframe at or before frame index[0] (a little before its timestamp, for rounding).
  bool seeked = false;
  if (index[0] > 0) {
    const double t = (index[0] - 0.5) / fps;
    const int64_t ts = start_pts + static_cast<int64_t>(std::floor(t / tb));
    if (av_seek_frame(in.fmt, in.stream, ts, AVSEEK_FLAG_BACKWARD) >= 0) seeked = true;
  }
  bool flushed = false, done = false, restarted = false;
  while (k < n && !done) {
    int rc;
    if (!flushed) {
      rc = av_read_frame(in.fmt, in.pkt);
      if (rc == AVERROR_EOF) {
        flushed = true;
        avcodec_send_packet(in.dec, nullptr);  // drain the frames the decoder still holds
      } else if (rc < 0) {
        return fail(err, errlen, "read error: " + av_err(rc)), -1;
      } else {
        rc = in.pkt->stream_index == in.stream ? avcodec_send_packet(in.dec, in.pkt) : 0;
        av_packet_unref(in.pkt);
        if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA) {
          return fail(err, errlen, "decode error: " + av_err(rc)), -1;
        }
      }
    }
    while (k < n) {
      rc = avcodec_receive_frame(in.dec, in.frame);
      if (rc == AVERROR(EAGAIN)) {
        if (flushed) done = true;  // nothing more will come
        break;
      }
      if (rc == AVERROR_EOF) {
        done = true;
        break;
      }
      if (rc < 0) return fail(err, errlen, "decode error: " + av_err(rc)), -1;
      int64_t pts = in.frame->best_effort_timestamp;
      if (pts == AV_NOPTS_VALUE) pts = in.frame->pts;
      const int64_t idx =
          pts == AV_NOPTS_VALUE ? last_idx + 1 : static_cast<int64_t>(std::llround((pts - start_pts) * tb * fps));
      if (!any && seeked && !restarted && idx > index[0]) {
        // The seek landed past the first frame wanted (no keyframe where expected): decode from the start.
        av_frame_unref(in.frame);
        avcodec_flush_buffers(in.dec);
        if (av_seek_frame(in.fmt, in.stream, start_pts, AVSEEK_FLAG_BACKWARD) < 0) {
          return fail(err, errlen, "cannot seek back to the start"), -1;
        }
        restarted = true;
        flushed = false;
        break;
      }
      any = true;
      last_idx = idx;
      if (idx >= index[k]) {
        const bool ok = emit(in.frame, idx);
        av_frame_unref(in.frame);
        if (!ok) return -1;
        if (last_held) av_frame_unref(last);
        last_held = false;
      } else {
        if (last_held) av_frame_unref(last);
        av_frame_move_ref(last, in.frame);
        last_held = true;
      }
    }
  }
  if (k < n) {
    // Past the end: the last frame of the stream stands in for the indices it does not have.
    if (!any) return fail(err, errlen, "decoded no frames"), -1;
    if (last_held && !emit(last, last_idx)) return -1;
    for (; k < n; k++) {
      std::memcpy(out + static_cast<size_t>(k) * frame_bytes, out + static_cast<size_t>(k - 1) * frame_bytes,
                  frame_bytes);
    }
  }
  return own > 0 ? own : 1;
}

// The library's version, to check that the binding and the build agree. Also silences FFmpeg's own log (every
// failure is reported through `err`); LAYERLOCK_AV_LOG=1 keeps it, for debugging a file.
LLV_API int llv_version() {
  const char* keep = std::getenv("LAYERLOCK_AV_LOG");
  if (keep == nullptr || std::strcmp(keep, "1") != 0) av_log_set_level(AV_LOG_QUIET);
  return 1;
}
