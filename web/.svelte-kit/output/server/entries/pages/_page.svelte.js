import "clsx";
function _page($$renderer) {
  $$renderer.push(`<div class="page narrow"><p class="muted" role="status">Loading…</p></div>`);
}
export {
  _page as default
};
