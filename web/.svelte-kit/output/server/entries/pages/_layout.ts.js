const ssr = false;
const prerender = false;
export {
  prerender,
  ssr
};
