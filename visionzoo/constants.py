"""Facts shared by models and data (one source of truth each)."""

#: ImageNet normalisation for inputs scaled to [0, 1] (RGB order).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Occ3D-nuScenes classes, index = label; the last one, 17, is free space.
OCC3D_CLASSES = (
    "others", "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
    "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain", "manmade",
    "vegetation", "free",
)
OCC3D_FREE = 17

#: RGB colour per Occ3D class for pictures (free drawn as white).
OCC3D_COLOURS = (
    (0, 0, 0), (255, 120, 50), (255, 192, 203), (255, 255, 0), (0, 150, 245), (0, 255, 255), (200, 180, 0),
    (255, 0, 0), (255, 240, 150), (135, 60, 0), (160, 32, 240), (255, 0, 255), (139, 137, 137), (75, 0, 75),
    (150, 240, 80), (230, 230, 250), (0, 175, 0), (255, 255, 255),
)

#: nuScenes cameras in the order BEVDet feeds them.
NUSCENES_CAMERAS = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")

#: DHD's height range in metres, (lowest, highest, step), both ends included: 65 bins of HeightNet's classes and of
#: the LiDAR height targets.
DHD_HEIGHT_RANGE = (-1.0, 5.4, 0.1)
DHD_HEIGHT_BINS = tuple(round(DHD_HEIGHT_RANGE[0] + DHD_HEIGHT_RANGE[2] * i, 1) for i in range(65))
#: The official DHD occupancy head's nuScenes voxel counts per class (its class weights are 1 / ln(count + 0.001));
#: ``task.class_counts`` takes them in place of the training split's counts.
OCC3D_NUSCENES_CLASS_COUNTS = (944004, 1897170, 152386, 2391677, 16957802, 724139, 189027, 2074468, 413451, 2384460,
                               5916653, 175883646, 4275424, 51393615, 61411620, 105975596, 116424404, 1892500630)
