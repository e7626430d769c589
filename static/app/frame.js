/**
 * Rendering at most once per animation frame, however many changes arrive before it.
 *
 * @module
 */

/**
 * A function that asks for `render` on the next animation frame; asking again before
 * that frame changes nothing.
 *
 * @param {() => void} render
 * @returns {() => void}
 */
export function frameScheduler(render) {
  let scheduled = false;
  return () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      render();
    });
  };
}
