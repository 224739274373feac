import * as universal from "../../../../src/routes/+layout.ts";
export { universal };
export { default as component } from "../../../../../node_modules/@sveltejs/kit/src/runtime/components/svelte-5/layout.svelte";