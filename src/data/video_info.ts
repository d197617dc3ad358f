/**
 * `VideoInfo`, what a video folder knows of each file (from ffprobe or the in-process decoder, cached in the
 * folder's index). Types only.
 * @module
 */

/** A video file's stream facts. */
export interface VideoInfo {
  /** The file's path. */
  path: string;
  /** Duration in seconds. */
  duration: number;
  /** Frame rate of the first video stream (frames per second). */
  fps: number;
  /** Frame width in pixels. */
  width: number;
  /** Frame height in pixels. */
  height: number;
  /** Number of frames (the container's count, else duration × fps). */
  frameCount: number;
  /** Presentation time of the first frame, in seconds. */
  start: number;
  /** Class id, for a labelled folder. */
  label?: number;
}
