/**
 * The app store as the roles use it: its migrations, the `AppInstall` entity runners host, and
 * what a serving process adds to its skills registry (the store service and the installed apps).
 */
import * as Layer from "effect/Layer"
import type { Migration } from "../../runtime/Migrations.ts"
import * as Catalog from "./Catalog.ts"
import * as StoreConfig from "./Config.ts"
import * as InstallEntity from "./InstallEntity.ts"
import * as Installed from "./Installed.ts"
import * as Store from "./Store.ts"

/** The store's tables. */
export const migrations: ReadonlyArray<Migration> = Catalog.migrations

/** The `AppInstall` entity (runners). */
export const entities = InstallEntity.layer

/**
 * The store service and the installed apps kept in the process's skills registry (needs `Skills`
 * and its host, the database, the blob store and the runtime's configuration).
 */
export const layerServing = Installed.layer.pipe(
  Layer.provideMerge(Store.layerFromConfig),
  Layer.provideMerge(StoreConfig.layer)
)

/** `layerServing` and the entity with given settings (tests). */
export const layerWith = (settings: StoreConfig.StoreSettings) => {
  const config = Layer.succeed(StoreConfig.StoreConfig, settings)
  return {
    serving: Installed.layer.pipe(Layer.provideMerge(Store.layerFromConfig), Layer.provideMerge(config)),
    entities: InstallEntity.layerEntity.pipe(Layer.provide(Store.layerFromConfig), Layer.provide(config))
  }
}
