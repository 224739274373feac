export const manifest = (() => {
function __memo(fn) {
	let value;
	return () => value ??= (value = fn());
}

return {
	appDir: "_app",
	appPath: "_app",
	assets: new Set(["favicon.svg"]),
	mimeTypes: {".svg":"image/svg+xml"},
	_: {
		client: {start:"_app/immutable/entry/start.DZ_whF5Z.js",app:"_app/immutable/entry/app.DNkhotEu.js",imports:["_app/immutable/entry/start.DZ_whF5Z.js","_app/immutable/chunks/e2P2TJ7B.js","_app/immutable/chunks/ABl0nJJo.js","_app/immutable/chunks/C94c2cVy.js","_app/immutable/entry/app.DNkhotEu.js","_app/immutable/chunks/e2P2TJ7B.js","_app/immutable/chunks/C94c2cVy.js","_app/immutable/chunks/D3n9fZkp.js","_app/immutable/chunks/BdjtRh5_.js","_app/immutable/chunks/Dfveo1S_.js"],stylesheets:[],fonts:[],uses_env_dynamic_public:false},
		nodes: [
			__memo(() => import('./nodes/0.js')),
			__memo(() => import('./nodes/1.js')),
			__memo(() => import('./nodes/2.js'))
		],
		remotes: {
			
		},
		routes: [
			{
				id: "/",
				pattern: /^\/$/,
				params: [],
				page: { layouts: [0,], errors: [1,], leaf: 2 },
				endpoint: null
			}
		],
		prerendered_routes: new Set([]),
		matchers: async () => {
			
			return {  };
		},
		server_assets: {}
	}
}
})();
