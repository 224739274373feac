
// this file is generated — do not edit it


declare module "svelte/elements" {
	export interface HTMLAttributes<T> {
		'data-sveltekit-keepfocus'?: true | '' | 'off' | undefined | null;
		'data-sveltekit-noscroll'?: true | '' | 'off' | undefined | null;
		'data-sveltekit-preload-code'?:
			| true
			| ''
			| 'eager'
			| 'viewport'
			| 'hover'
			| 'tap'
			| 'off'
			| undefined
			| null;
		'data-sveltekit-preload-data'?: true | '' | 'hover' | 'tap' | 'off' | undefined | null;
		'data-sveltekit-reload'?: true | '' | 'off' | undefined | null;
		'data-sveltekit-replacestate'?: true | '' | 'off' | undefined | null;
	}
}

export {};


declare module "$app/types" {
	type MatcherParam<M> = M extends (param : string) => param is (infer U extends string) ? U : string;

	export interface AppTypes {
		RouteId(): "/" | "/admin" | "/apps" | "/chats" | "/chats/[id]" | "/credits" | "/login" | "/mates" | "/mates/[id]" | "/settings" | "/settings/keys" | "/settings/security" | "/signup" | "/s" | "/s/[token]" | "/verify";
		RouteParams(): {
			"/chats/[id]": { id: string };
			"/mates/[id]": { id: string };
			"/s/[token]": { token: string }
		};
		LayoutParams(): {
			"/": { id?: string | undefined; token?: string | undefined };
			"/admin": Record<string, never>;
			"/apps": Record<string, never>;
			"/chats": { id?: string | undefined };
			"/chats/[id]": { id: string };
			"/credits": Record<string, never>;
			"/login": Record<string, never>;
			"/mates": { id?: string | undefined };
			"/mates/[id]": { id: string };
			"/settings": Record<string, never>;
			"/settings/keys": Record<string, never>;
			"/settings/security": Record<string, never>;
			"/signup": Record<string, never>;
			"/s": { token?: string | undefined };
			"/s/[token]": { token: string };
			"/verify": Record<string, never>
		};
		Pathname(): "/" | "/admin" | "/apps" | "/chats" | `/chats/${string}` & {} | "/credits" | "/login" | "/mates" | `/mates/${string}` & {} | "/settings" | "/settings/keys" | "/settings/security" | "/signup" | `/s/${string}` & {} | "/verify";
		ResolvedPathname(): `${"" | `/${string}`}${ReturnType<AppTypes['Pathname']>}`;
		Asset(): "/favicon.svg" | string & {};
	}
}